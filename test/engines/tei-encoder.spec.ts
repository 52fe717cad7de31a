import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModelPackage, TeiEncoder, type ModelPackage } from '@lib/model-runtime';
import { AppError, BUNDLED_MODEL_PATH, type ErrorCode } from '@lib/shared';
import { startFakeEngine, type FakeEngine, type FakeHandler } from './fake-engine.js';

/* The TEI client against a fake TEI: what it sends, what it checks at start, and each bad answer as one of our codes. */

let pkg: ModelPackage;
let engine: FakeEngine;
const WIDTH = 128;
const info = (over: object = {}) => ({
  model_id: 'Alibaba-NLP/gte-large-en-v1.5', model_sha: 'abc123', model_dtype: 'float16', model_type: { embedding: { pooling: 'mean' } },
  max_input_length: 8192, max_client_batch_size: 2, version: '1.8.2', ...over,
});
const json = (res: Parameters<FakeHandler>[1], status: number, body: unknown) => void res.writeHead(status, { 'content-type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body));
const good = (infoOver: object = {}): FakeHandler => (r, res) => {
  if (r.path === '/info') return json(res, 200, info(infoOver));
  json(res, 200, r.body.inputs.map((t: string, i: number) => Array.from({ length: WIDTH }, (_, k) => t.length + i + k / 1000)));
};
const settings = () => ({ encoderEngineUrl: engine.url, encoderEngineModelId: 'Alibaba-NLP/gte-large-en-v1.5@abc123', encoderEngineTimeoutMs: 1500 });

async function failure(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('expected a failure');
}

beforeAll(async () => {
  pkg = await loadModelPackage(BUNDLED_MODEL_PATH);
  engine = await startFakeEngine(good());
});
afterAll(async () => engine?.stop());

describe('TeiEncoder', () => {
  it('sends raw, untruncated embeds in batches of max_client_batch_size and keeps the order', async () => {
    engine.behave(good());
    const tei = await TeiEncoder.open({ ...settings(), encoderEngineApiKey: 'tei-key' }, pkg.manifest.encoder);
    engine.requests.length = 0;
    const texts = ['a', 'bb', 'ccc', 'dddd', 'eeeee'];
    const out = await tei.encodeChunks(texts.map((text) => ({ text, ids: [] })));
    expect(engine.requests.map((r) => r.body)).toEqual([
      { inputs: ['a', 'bb'], normalize: false, truncate: false },
      { inputs: ['ccc', 'dddd'], normalize: false, truncate: false },
      { inputs: ['eeeee'], normalize: false, truncate: false },
    ]);
    expect(engine.requests[0]!.headers.authorization).toBe('Bearer tei-key');
    expect(out).toHaveLength(5 * WIDTH);
    expect([0, 1, 2, 3, 4].map((i) => out[i * WIDTH])).toEqual([1, 3, 3, 5, 5]);
  });

  it('waits at start for a TEI that is not up yet, up to ENGINE_START_TIMEOUT_MS', async () => {
    let infos = 0;
    engine.behave((r, res) => (r.path === '/info' && ++infos <= 2 ? json(res, 503, 'loading') : good()(r, res)));
    await TeiEncoder.open({ ...settings(), engineStartTimeoutMs: 20_000 }, pkg.manifest.encoder);
    expect(infos).toBe(3);
    engine.behave((r, res) => (r.path === '/info' ? json(res, 503, 'loading') : good()(r, res)));
    const err = await failure(TeiEncoder.open({ ...settings(), engineStartTimeoutMs: 600 }, pkg.manifest.encoder));
    expect(err.code).toBe('ENGINE_UNAVAILABLE');
  });

  it.each([
    { name: 'another model', over: { model_id: 'BAAI/bge-large-en-v1.5' }, message: /TEI serves BAAI\/bge-large-en-v1.5@abc123; ENCODER_ENGINE_MODEL_ID is/ },
    { name: 'another revision', over: { model_sha: 'fff999' }, message: /@fff999/ },
    { name: 'inputs shorter than the package cuts', over: { max_input_length: 128 }, message: /takes 128 tokens per input; the package cuts chunks of up to 256/ },
    { name: 'another pooling', over: { model_type: { embedding: { pooling: 'cls' } } }, message: /TEI pools cls; the package's encoder \(and its adapter\) use mean pooling/ },
  ])('refuses to start on $name (MODEL_MISMATCH)', async ({ over, message }) => {
    engine.behave(good(over));
    const err = await failure(TeiEncoder.open(settings(), pkg.manifest.encoder));
    expect(err.code).toBe('MODEL_MISMATCH');
    expect(err.message).toMatch(message);
  });

  const cases: { name: string; embed: FakeHandler; code: ErrorCode; message: RegExp }[] = [
    { name: 'vectors of another width', embed: (r, res) => json(res, 200, r.body.inputs.map(() => [1, 2, 3])), code: 'ENGINE_BAD_RESPONSE', message: /width 3; the adapter reads 128/ },
    { name: 'fewer vectors than texts', embed: (_r, res) => json(res, 200, []), code: 'ENGINE_BAD_RESPONSE', message: /0 vectors for 1 texts/ },
    { name: 'a non-number in a vector', embed: (r, res) => json(res, 200, r.body.inputs.map(() => ['x'])), code: 'ENGINE_BAD_RESPONSE', message: /outside its protocol/ },
    { name: 'malformed JSON', embed: (_r, res) => json(res, 200, '[[0.1, 0.2'), code: 'ENGINE_BAD_RESPONSE', message: /malformed JSON/ },
    { name: 'a 422 (input too long)', embed: (_r, res) => json(res, 422, { error: 'Input validation error: `inputs` must have less than 512 tokens', error_type: 'Validation' }), code: 'ENGINE_REJECTED', message: /422/ },
    { name: 'a 429 (overloaded)', embed: (_r, res) => json(res, 429, { error: 'Model is overloaded', error_type: 'Overloaded' }), code: 'ENGINE_UNAVAILABLE', message: /429/ },
    { name: 'a 503', embed: (_r, res) => json(res, 503, 'unavailable'), code: 'ENGINE_UNAVAILABLE', message: /503/ },
    { name: 'silence (timeout)', embed: () => undefined, code: 'ENGINE_UNAVAILABLE', message: /sent nothing for 1500 ms/ },
    { name: 'a body cut mid-way', embed: (_r, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' }); res.write('[[0.1,'); setTimeout(() => res.socket?.destroy(), 20); }, code: 'ENGINE_UNAVAILABLE', message: /broke off/ },
  ];

  it.each(cases)('$name is $code', async ({ embed, code, message }) => {
    engine.behave(good());
    const tei = await TeiEncoder.open(settings(), pkg.manifest.encoder);
    engine.behave((r, res) => (r.path === '/info' ? json(res, 200, info()) : embed(r, res)));
    const err = await failure(tei.encodeChunks([{ text: 'one chunk', ids: [] }]));
    expect(err.code, err.message).toBe(code);
    expect(err.message).toMatch(message);
  });
});
