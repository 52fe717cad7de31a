import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sse, sseHead, startFakeEngine, vllmAnswer, vllmChunk, type FakeEngine, type FakeHandler } from '../engines/fake-engine.js';
import { startStack, type Stack } from '../e2e/stack.js';

/*
 * A hostile decoder engine behind the composed stack: whatever it answers, a job ends (succeeded after a retry, or
 * failed with an ENGINE_* code), the API never answers 5xx, and nothing is left running.
 */

let engine: FakeEngine;
let stack: Stack;
let http: ReturnType<typeof request>;
const TEXT = 'The keeper of the northern lighthouse was Ada. She kept the lamp for forty years.';

async function submitAndWait(timeoutMs = 40_000) {
  const created = await http.post('/v1/jobs').send({ text: TEXT, task: { type: 'qa', question: 'Who kept the lamp?' }, generation: { maxNewTokens: 4 } }).expect(202);
  const t0 = Date.now();
  for (;;) {
    const res = await http.get(`/v1/jobs/${created.body.id}`);
    expect(res.status).toBe(200);
    if (['succeeded', 'failed', 'cancelled'].includes(res.body.status)) return res.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job stuck in ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  engine = await startFakeEngine(vllmAnswer([40], 'length'));
  stack = await startStack({ decoderBackend: 'vllm', decoderEngineUrl: engine.url, decoderEngineModel: 'e2llm', decoderEngineTimeoutMs: 2000 });
  http = request(stack.api.url);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  await engine?.stop();
});

describe('a hostile vLLM behind the stack', () => {
  it('malformed JSON fails the job at once with ENGINE_BAD_RESPONSE (not retried)', async () => {
    engine.behave((_r, res) => { sseHead(res); sse(res, '{"choices": [ {"ind'); res.end(); });
    const posts = engine.requests.length;
    const job = await submitAndWait();
    expect(job).toMatchObject({ status: 'failed', error: { code: 'ENGINE_BAD_RESPONSE' } });
    expect(engine.requests.length - posts).toBe(1);
  });

  it('a 503 then a good answer: the job is retried and succeeds', async () => {
    let calls = 0;
    engine.behave((r, res) => {
      if (++calls === 1) return void res.writeHead(503).end('{"error":"warming up"}');
      vllmAnswer([40, 41], 'length')(r, res);
    });
    const job = await submitAndWait();
    expect(job.status).toBe('succeeded');
    expect(job.result.usage.generatedTokens).toBe(2);
    expect(calls).toBe(2);
  });

  it('a stream cut mid-way then a good answer: retried, and the answer is the second one whole', async () => {
    let calls = 0;
    engine.behave((r, res) => {
      if (++calls === 1) {
        sseHead(res);
        sse(res, vllmChunk([50]));
        return void setTimeout(() => res.socket?.destroy(), 20);
      }
      vllmAnswer([40, 41, 42], 'length')(r, res);
    });
    const job = await submitAndWait();
    expect(job.status).toBe('succeeded');
    expect(job.result.usage.generatedTokens).toBe(3);
  });

  it('an engine that always fails 500: the job ends failed with ENGINE_UNAVAILABLE after its attempts', async () => {
    engine.behave((_r, res) => void res.writeHead(500).end('Internal Server Error'));
    const job = await submitAndWait();
    expect(job).toMatchObject({ status: 'failed', error: { code: 'ENGINE_UNAVAILABLE' } });
    expect(job.error.message).toMatch(/vLLM answered 500/);
  }, 60_000);

  it('an engine that never answers: each attempt times out and the job ends failed, not stuck', async () => {
    engine.behave(() => undefined);
    const job = await submitAndWait();
    expect(job).toMatchObject({ status: 'failed', error: { code: 'ENGINE_UNAVAILABLE' } });
    expect(job.error.message).toMatch(/sent nothing for 2000 ms/);
    expect((await http.get('/healthz')).status).toBe(200);
  }, 60_000);
});

describe('a hostile text-embeddings-inference behind the stack', () => {
  let tei: FakeEngine;
  let teiStack: Stack;
  let teiHttp: ReturnType<typeof request>;
  const info = { model_id: 'acme/embedder', model_sha: 'r1', model_type: { embedding: { pooling: 'mean' } }, max_input_length: 512, max_client_batch_size: 64 };
  const reply = (res: Parameters<FakeHandler>[1], status: number, body: unknown) => void res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  const vectors = (width: number): FakeHandler => (r, res) =>
    r.path === '/info' ? reply(res, 200, info) : reply(res, 200, r.body.inputs.map((t: string) => Array.from({ length: width }, (_, k) => ((t.length + k) % 7) / 10)));

  beforeAll(async () => {
    tei = await startFakeEngine(vectors(128));
    teiStack = await startStack({ encoderBackend: 'tei', encoderEngineUrl: tei.url, encoderEngineModelId: 'acme/embedder@r1', encoderEngineTimeoutMs: 2000 });
    teiHttp = request(teiStack.api.url);
  }, 120_000);

  afterAll(async () => {
    await teiStack?.stop();
    await tei?.stop();
  });

  async function run(text: string) {
    const created = await teiHttp.post('/v1/jobs').send({ text, task: { type: 'summarize' }, generation: { maxNewTokens: 2 } }).expect(202);
    const t0 = Date.now();
    for (;;) {
      const res = await teiHttp.get(`/v1/jobs/${created.body.id}`);
      expect(res.status).toBe(200);
      if (['succeeded', 'failed', 'cancelled'].includes(res.body.status)) return res.body;
      if (Date.now() - t0 > 40_000) throw new Error(`job stuck in ${res.body.status}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('vectors of the wrong width fail the job with ENGINE_BAD_RESPONSE', async () => {
    tei.behave(vectors(64));
    expect(await run('Vectors of the wrong width.')).toMatchObject({ status: 'failed', error: { code: 'ENGINE_BAD_RESPONSE' } });
  });

  it('a 503 once: the encode step is retried and the job succeeds', async () => {
    let embeds = 0;
    tei.behave((r, res) => (r.path === '/embed' && ++embeds === 1 ? reply(res, 503, { error: 'loading' }) : vectors(128)(r, res)));
    expect((await run('An engine that is still loading.')).status).toBe('succeeded');
    expect(embeds).toBe(2);
  });
});
