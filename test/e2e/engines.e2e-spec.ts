import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2llmModel, encoderIdFor, TeiEncoder } from '@lib/model-runtime';
import { GenerationParams, Task, loadConfig } from '@lib/shared';
import { startEngineProcess, type EngineProcess } from '../engines/engine-process.js';
import { startStack, type Stack } from './stack.js';

/*
 * The decoder and encoder backends against stand-in engines that read our requests exactly as vLLM, SGLang and TEI do
 * (test/engines/engine_server.py: Debian's torch, the project's PyTorch modules, the shipped package's weights). A job
 * through each backend must give the ONNX backend's answer for the same input and settings (greedy).
 */

const SAMPLE = fileURLToPath(new URL('../../samples/gpl-3.0.txt', import.meta.url));

async function waitFor(http: ReturnType<typeof request>, id: string, timeoutMs = 90_000) {
  const t0 = Date.now();
  for (;;) {
    const res = await http.get(`/v1/jobs/${id}`).expect(200);
    if (['succeeded', 'failed', 'cancelled'].includes(res.body.status)) return res.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The jobs each backend answers, one per way an answer ends: expansion on (the default) and off, a stop sequence, min tokens, EOS. */
const KEEPER = 'The keeper of the northern lighthouse was Ada. She kept the lamp for forty years.';
const CASES = [
  { name: 'qa with expansion', text: null, task: { type: 'qa', question: 'Which version of the licence may you choose?' }, generation: { maxNewTokens: 24 }, ends: 'length' },
  { name: 'summary, soft tokens only, stop at a newline', text: null, task: { type: 'summarize' }, generation: { maxNewTokens: 32, stop: ['\n'], expand: { chunks: 0 } }, ends: 'stop' },
  { name: 'instruct with min tokens', text: null, task: { type: 'instruct', instruction: 'List the duties of a conveyor.' }, generation: { maxNewTokens: 16, minNewTokens: 6 }, ends: 'length' },
  { name: 'a short document answered to its EOS', text: KEEPER, task: { type: 'qa', question: 'What is it about?' }, generation: { maxNewTokens: 64 }, ends: 'eos' },
] as const;

let sample: string;
let onnx: E2llmModel;

beforeAll(async () => {
  sample = await readFile(SAMPLE, 'utf8');
  onnx = await E2llmModel.load(loadConfig({}));
}, 120_000);

afterAll(async () => {
  await onnx?.release();
});

describe.each([
  { backend: 'vllm' as const, args: ['--served-model-name', 'e2llm-tiny', '--api-key', 'engine-key-0123'] },
  { backend: 'sglang' as const, args: [] },
])('DECODER_BACKEND=$backend', ({ backend, args }) => {
  let engine: EngineProcess;
  let stack: Stack;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    engine = await startEngineProcess(backend, args);
    stack = await startStack({
      decoderBackend: backend,
      decoderEngineUrl: engine.url,
      ...(backend === 'vllm' ? { decoderEngineModel: 'e2llm-tiny', decoderEngineApiKey: 'engine-key-0123' } : {}),
    });
    http = request(stack.api.url);
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await engine?.stop();
  });

  it.each(CASES)('$name: the answer equals the ONNX backend\'s', async ({ text, task, generation, ends }) => {
    const created = await http.post('/v1/jobs').send({ text: text ?? sample, task, generation }).expect(202);
    const done = await waitFor(http, created.body.id);
    expect(done.status, JSON.stringify(done.error) + engine.stderr()).toBe('succeeded');
    const local = await onnx.ask(text ?? sample, Task.parse(task), GenerationParams.parse(generation));
    expect(local.answer.length).toBeGreaterThan(0);
    expect(local.finishReason).toBe(ends);
    expect(done.result.text).toBe(local.answer);
    expect(done.result.finishReason).toBe(local.finishReason);
    expect(done.result.usage).toEqual(local.usage);
    // Evidence for a question ranks chunks by BM25 on every backend. Without a question the ONNX decoder's attention
    // ranks them; the engines do not return attention, so there is no evidence then (docs/gpu-fleet.md).
    if (task.type === 'summarize') expect(done.result.evidence).toEqual([]);
    else expect(done.result.evidence).toEqual(local.evidence);
  });

  it('streams the answer as text events that add up to the result', async () => {
    const created = await http.post('/v1/jobs').send({ text: `${sample}\nA tail of its own.`, task: { type: 'summarize' }, generation: { maxNewTokens: 16 } }).expect(202);
    const res = await http.get(`/v1/jobs/${created.body.id}/events`).buffer(true).parse((r, cb) => {
      let data = '';
      r.on('data', (c: Buffer) => (data += c.toString()));
      r.on('end', () => cb(null, data));
    });
    const events = String(res.body).trim().split('\n\n').map((block) => ({
      type: /^event: ?(.*)$/m.exec(block)?.[1],
      data: JSON.parse(/^data: ?(.*)$/m.exec(block)?.[1] ?? "null"),
    }));
    const last = events.at(-1)!;
    expect(last.data?.status, String(res.body).slice(-2000)).toBe('succeeded');
    const deltas = events.filter((e) => e.type === 'text');
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.map((e) => e.data.delta).join('')).toBe(last.data.result.text);
  });
});

describe('ENCODER_BACKEND=tei', () => {
  const MODEL_ID = 'e2llm/e2llm-tiny-encoder';
  let engine: EngineProcess;
  let stack: Stack;
  let http: ReturnType<typeof request>;
  let modelId: string;

  beforeAll(async () => {
    engine = await startEngineProcess('tei', ['--model-id', MODEL_ID, '--api-key', 'tei-key-0123']);
    const info = (await (await fetch(`${engine.url}/info`, { headers: { authorization: 'Bearer tei-key-0123' } })).json()) as { model_id: string; model_sha: string };
    modelId = `${info.model_id}@${info.model_sha}`;
    stack = await startStack({ encoderBackend: 'tei', encoderEngineUrl: engine.url, encoderEngineModelId: modelId, encoderEngineApiKey: 'tei-key-0123' });
    http = request(stack.api.url);
  }, 180_000);

  afterAll(async () => {
    await stack?.stop();
    await engine?.stop();
  });

  it('TEI\'s vectors are the ONNX encoder\'s within float32 noise', async () => {
    const chunks = onnx.chunk(sample);
    const tei = await TeiEncoder.open({ encoderEngineUrl: engine.url, encoderEngineModelId: modelId, encoderEngineApiKey: 'tei-key-0123', encoderEngineTimeoutMs: 30_000 }, onnx.pkg.manifest.encoder);
    const a = await tei.encodeChunks(chunks);
    const b = await onnx.encoder.encode(chunks.map((c) => c.ids));
    let diff = 0;
    let scale = 0;
    for (let i = 0; i < a.length; i++) {
      diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
      scale = Math.max(scale, Math.abs(b[i]!));
    }
    console.log(`TEI stand-in (torch) vs onnxruntime, ${chunks.length} chunks: max abs diff ${diff.toExponential(2)} (largest value ${scale.toFixed(2)})`);
    expect(diff).toBeLessThan(1e-4);
  });

  it('stores soft prompts under the TEI model\'s identity, not the package encoder\'s', async () => {
    const res = await http.get('/v1/models').expect(200);
    const id = res.body.data[0].encoderId;
    expect(id).toBe(encoderIdFor(onnx.pkg, { encoderBackend: 'tei', encoderEngineModelId: modelId }));
    expect(id).toMatch(/^enc-tei-[0-9a-f]{32}$/);
    expect(id).not.toBe(onnx.encoderId);
  });

  it.each(CASES)('$name: the answer equals the ONNX backend\'s', async ({ text, task, generation, ends }) => {
    const created = await http.post('/v1/jobs').send({ text: text ?? sample, task, generation }).expect(202);
    const done = await waitFor(http, created.body.id);
    expect(done.status, JSON.stringify(done.error) + engine.stderr()).toBe('succeeded');
    const local = await onnx.ask(text ?? sample, Task.parse(task), GenerationParams.parse(generation));
    expect(local.finishReason).toBe(ends);
    expect(done.result.text).toBe(local.answer);
    expect(done.result.finishReason).toBe(local.finishReason);
    expect(done.result.usage).toEqual(local.usage);
    // The same chunks in the same order; a summary's evidence is ranked by the decoder's attention, whose scores move
    // with the encoder's float noise (measured above), so those are compared to 4 decimals.
    expect(done.result.evidence).toEqual(local.evidence.map((e) => ({ ...e, score: expect.closeTo(e.score, 4) })));
  });
});
