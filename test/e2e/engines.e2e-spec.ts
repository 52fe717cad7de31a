import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2llmModel } from '@lib/model-runtime';
import { GenerationParams, Task } from '@lib/shared';
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
  onnx = await E2llmModel.load((await import('@lib/shared')).loadConfig({}));
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
