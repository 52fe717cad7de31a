import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadModelPackage, RemoteDecoder, sglangProtocol, TextStream, TextTokenizer, vllmProtocol, type ModelPackage } from '@lib/model-runtime';
import { AppError, BUNDLED_MODEL_PATH, GenerationParams, type ErrorCode } from '@lib/shared';
import { sse, sseHead, startFakeEngine, vllmAnswer, vllmChunk, type FakeEngine, type FakeHandler } from './fake-engine.js';

/*
 * The decoder engine client against a hostile engine: every malformed or failed answer becomes one of our codes with
 * the right retryability, within the configured timeout, and never anything else.
 */

let pkg: ModelPackage;
let tokenizer: TextTokenizer;
let engine: FakeEngine;
let decoder: RemoteDecoder;
// Generous: the machine's cores are shared with other suites, and only the silent cases wait it out.
const TIMEOUT_MS = 1500;
const params = (over: Partial<GenerationParams> = {}) => GenerationParams.parse({ maxNewTokens: 8, temperature: 0, ...over });
const input = () => ({ prefixIds: [1, 40, 41], context: new Float32Array(2 * 256).fill(0.01), suffixIds: [42] });

async function open(handler: FakeHandler, over: Partial<Parameters<typeof RemoteDecoder.open>[4]> = {}, protocol = vllmProtocol('e2llm')) {
  engine.behave(vllmAnswer([5], 'length'));
  const d = await RemoteDecoder.open(protocol, pkg.files.embeddings, tokenizer, pkg.manifest.decoder, {
    decoderEngineUrl: engine.url,
    decoderEngineTimeoutMs: TIMEOUT_MS,
    decoderEngineConcurrency: 4,
    promptEmbedsMaxNorm: 1000,
    ...over,
  });
  engine.behave(handler);
  return d;
}

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
  tokenizer = await TextTokenizer.load(pkg.files.decoderTokenizer);
  engine = await startFakeEngine(vllmAnswer([5]));
});

afterAll(async () => {
  await engine?.stop();
});

beforeEach(() => {
  engine.requests.length = 0;
});

describe('RemoteDecoder (vLLM) against a hostile engine', () => {
  it('opens only after the health route and a one-token answer, and sends what vLLM expects', async () => {
    decoder = await open(vllmAnswer([40, 41, 2]), { decoderEngineApiKey: 'secret-key' });
    expect(engine.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /health', 'POST /v1/completions']);
    expect(engine.requests[1]!.headers.authorization).toBe('Bearer secret-key');
    const warm = engine.requests[1]!.body;
    expect(warm).toMatchObject({ model: 'e2llm', max_tokens: 1, temperature: 0, stream: true, return_token_ids: true, stop_token_ids: [2], top_k: -1, repetition_penalty: 1, min_p: 0 });
    expect(typeof warm.prompt_embeds).toBe('string');
    const got = await decoder.generate(input(), params());
    expect(got).toMatchObject({ tokens: [40, 41], finishReason: 'eos', text: tokenizer.decode([40, 41]) });
  });

  const cases: { name: string; handler: FakeHandler; code: ErrorCode; message: RegExp }[] = [
    { name: 'a 500', handler: (_r, res) => void res.writeHead(500).end('boom'), code: 'ENGINE_UNAVAILABLE', message: /vLLM answered 500: "boom"/ },
    { name: 'a 429', handler: (_r, res) => void res.writeHead(429).end('{"error":"busy"}'), code: 'ENGINE_UNAVAILABLE', message: /429/ },
    { name: 'a 400', handler: (_r, res) => void res.writeHead(400).end('{"error":{"message":"You must set --enable-prompt-embeds"}}'), code: 'ENGINE_REJECTED', message: /400.*enable-prompt-embeds/ },
    { name: 'a 404 (wrong model name)', handler: (_r, res) => void res.writeHead(404).end('{"error":{"message":"The model `x` does not exist."}}'), code: 'ENGINE_REJECTED', message: /404/ },
    { name: 'an HTML page with 200', handler: (_r, res) => void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>proxy</html>'), code: 'ENGINE_BAD_RESPONSE', message: /text\/html where a stream/ },
    {
      name: 'malformed JSON in the stream',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([40])); sse(res, '{"choices": [ {"index": 0,'); res.end(); },
      code: 'ENGINE_BAD_RESPONSE',
      message: /malformed JSON/,
    },
    {
      name: 'a chunk of the wrong shape',
      handler: (_r, res) => { sseHead(res); sse(res, { choices: [{ index: 0, token_ids: 'forty' }] }); res.end(); },
      code: 'ENGINE_BAD_RESPONSE',
      message: /outside its protocol \(choices\.0\.token_ids/,
    },
    {
      name: 'text without token ids (an old vLLM)',
      handler: (_r, res) => { sseHead(res); sse(res, { choices: [{ index: 0, text: 'hi', finish_reason: null }] }); res.end(); },
      code: 'ENGINE_BAD_RESPONSE',
      message: /return_token_ids/,
    },
    {
      name: 'a token id outside the vocabulary',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([999_999])); res.end(); },
      code: 'ENGINE_BAD_RESPONSE',
      message: /token id 999999/,
    },
    {
      name: 'two choices for one request',
      handler: (_r, res) => { sseHead(res); sse(res, { choices: [{ index: 0, token_ids: [4] }, { index: 1, token_ids: [5] }] }); res.end(); },
      code: 'ENGINE_BAD_RESPONSE',
      message: /2 choices/,
    },
    {
      name: 'an error inside the stream',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([40])); sse(res, { error: { object: 'error', message: 'CUDA out of memory', code: 500 } }); res.end(); },
      code: 'ENGINE_UNAVAILABLE',
      message: /CUDA out of memory/,
    },
    {
      name: 'a stream that ends cleanly but early (no finish, no [DONE])',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([40])); res.end(); },
      code: 'ENGINE_UNAVAILABLE',
      message: /stream was cut before the answer ended \(after 1 tokens\)/,
    },
    {
      name: 'a stream cut mid-way (the socket dies)',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([40])); setTimeout(() => res.socket?.destroy(), 20); },
      code: 'ENGINE_UNAVAILABLE',
      message: /stream (broke off|was cut)/,
    },
    {
      name: '[DONE] without a finish reason',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([40])); sse(res, '[DONE]'); res.end(); },
      code: 'ENGINE_BAD_RESPONSE',
      message: /without saying why/,
    },
    {
      name: 'an aborted answer',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([40], 'abort')); sse(res, '[DONE]'); res.end(); },
      code: 'ENGINE_UNAVAILABLE',
      message: /finish reason "abort"/,
    },
    { name: 'no answer at all (timeout)', handler: () => undefined, code: 'ENGINE_UNAVAILABLE', message: new RegExp(`sent nothing for ${TIMEOUT_MS} ms`) },
    {
      name: 'a stream that stalls after one token (idle timeout)',
      handler: (_r, res) => { sseHead(res); sse(res, vllmChunk([40])); },
      code: 'ENGINE_UNAVAILABLE',
      message: /sent nothing for/,
    },
  ];

  it.each(cases)('$name is $code', async ({ handler, code, message }) => {
    engine.behave(handler);
    const t0 = Date.now();
    const err = await failure(decoder.generate(input(), params()));
    expect(err.code, err.message).toBe(code);
    expect(err.message).toMatch(message);
    expect(err.retryable).toBe(code === 'ENGINE_UNAVAILABLE');
    expect(Date.now() - t0).toBeLessThan(TIMEOUT_MS * 4);
  });

  it('an engine that is not there is ENGINE_UNAVAILABLE, at open and later', async () => {
    const gone = await startFakeEngine(vllmAnswer([5]));
    const d = await RemoteDecoder.open(vllmProtocol('e2llm'), pkg.files.embeddings, tokenizer, pkg.manifest.decoder, {
      decoderEngineUrl: gone.url, decoderEngineTimeoutMs: TIMEOUT_MS, decoderEngineConcurrency: 1, promptEmbedsMaxNorm: 1000,
    });
    await gone.stop();
    expect((await failure(d.generate(input(), params()))).code).toBe('ENGINE_UNAVAILABLE');
    const err = await failure(RemoteDecoder.open(vllmProtocol('e2llm'), pkg.files.embeddings, tokenizer, pkg.manifest.decoder, {
      decoderEngineUrl: gone.url, decoderEngineTimeoutMs: TIMEOUT_MS, decoderEngineConcurrency: 1, promptEmbedsMaxNorm: 1000,
    }));
    expect(err.code).toBe('ENGINE_UNAVAILABLE');
    expect(err.message).toMatch(/cannot reach vLLM/);
  });

  it('waits at start for an engine that is still loading, and not for one that refuses', async () => {
    let calls = 0;
    engine.behave((r, res) => (++calls <= 3 ? void res.writeHead(503).end('loading') : vllmAnswer([5])(r, res)));
    const settings = { decoderEngineUrl: engine.url, decoderEngineTimeoutMs: TIMEOUT_MS, decoderEngineConcurrency: 1, promptEmbedsMaxNorm: 1000, engineStartTimeoutMs: 20_000 };
    await RemoteDecoder.open(vllmProtocol('e2llm'), pkg.files.embeddings, tokenizer, pkg.manifest.decoder, settings);
    expect(calls).toBe(5); // three 503s, then the health route and the warm-up token
    engine.behave((r, res) => (r.method === 'GET' ? void res.end('') : void res.writeHead(400).end('You must set --enable-prompt-embeds')));
    const t0 = Date.now();
    const err = await failure(RemoteDecoder.open(vllmProtocol('e2llm'), pkg.files.embeddings, tokenizer, pkg.manifest.decoder, settings));
    expect(err.code).toBe('ENGINE_REJECTED');
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('a cancelled job stops the stream with JOB_CANCELLED', async () => {
    engine.behave((_r, res) => { sseHead(res); sse(res, vllmChunk([40])); });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 50);
    const err = await failure(decoder.generate(input(), params(), { signal: abort.signal }));
    expect(err.code).toBe('JOB_CANCELLED');
  });

  it('refuses prompt embeddings that are not finite or too large before sending anything', async () => {
    engine.behave(vllmAnswer([40]));
    const nan = input();
    nan.context[300] = Number.NaN;
    expect((await failure(decoder.generate(nan, params()))).code).toBe('PROMPT_EMBEDS_INVALID');
    const big = input();
    big.context.fill(100, 0, 256);
    const err = await failure(decoder.generate(big, params()));
    expect(err.code).toBe('PROMPT_EMBEDS_INVALID');
    expect(err.message).toMatch(/row 3 has norm 1600.0, over PROMPT_EMBEDS_MAX_NORM \(1000\)/);
    expect(engine.requests).toHaveLength(0);
  });

  it('stops on a stop sequence and closes the stream, as the ONNX decoder stops', async () => {
    const ids = tokenizer.encode(' red fox. Then more text');
    engine.behave(vllmAnswer(ids, 'length'));
    const got = await decoder.generate(input(), params({ stop: ['.'], maxNewTokens: 20 }));
    // What the ONNX decoder's TextStream makes of the same tokens: up to the one completing the stop string, cut before it.
    const reference = new TextStream(tokenizer, ['.']);
    const upTo = ids.findIndex((_, i) => reference.push(ids.slice(0, i + 1))) + 1;
    expect(got).toMatchObject({ tokens: ids.slice(0, upTo), text: reference.finish(ids.slice(0, upTo)), finishReason: 'stop' });
    expect(got.text).toMatch(/red fox$/);
    expect(engine.requests[0]!.body.stop).toEqual(['.']);
  });

  it('keeps at most DECODER_ENGINE_CONCURRENCY requests in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const d = await open(async (_r, res) => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 30));
      inFlight--;
      vllmAnswer([40], 'length')(_r, res);
    }, { decoderEngineConcurrency: 2 });
    await Promise.all(Array.from({ length: 6 }, () => d.generate(input(), params())));
    expect(most).toBe(2);
    expect(engine.requests.filter((r) => r.method === 'POST').length).toBe(7); // the warm-up and six
  });
});

describe('RemoteDecoder (SGLang) stream forms', () => {
  const answer = (chunks: number[][], totals: number[], finish: object) => ((_r, res) => {
    if (_r.method === 'GET') return void res.end('');
    sseHead(res);
    chunks.forEach((ids, i) => sse(res, { text: '', output_ids: ids, meta_info: { completion_tokens: totals[i], finish_reason: i === chunks.length - 1 ? finish : null } }));
    sse(res, '[DONE]');
    res.end();
  }) as FakeHandler;

  it('reads cumulative and incremental output ids alike', async () => {
    const warm = answer([[5]], [1], { type: 'length', length: 1 });
    engine.behave(warm);
    const d = await RemoteDecoder.open(sglangProtocol(), pkg.files.embeddings, tokenizer, pkg.manifest.decoder, {
      decoderEngineUrl: engine.url, decoderEngineTimeoutMs: TIMEOUT_MS, decoderEngineConcurrency: 1, promptEmbedsMaxNorm: 1000,
    });
    expect(engine.requests[1]!.body).toMatchObject({ sampling_params: { max_new_tokens: 1, temperature: 0, stop_token_ids: [2], repetition_penalty: 1, min_p: 0 }, stream: true });
    expect(engine.requests[1]!.body.input_embeds).toHaveLength(1);
    expect(engine.requests[1]!.body.input_embeds[0]).toHaveLength(256);
    engine.behave(answer([[40], [40, 41], [40, 41, 42]], [1, 2, 3], { type: 'stop', matched: 2 }));
    expect(await d.generate(input(), params())).toMatchObject({ tokens: [40, 41, 42], finishReason: 'eos' });
    engine.behave(answer([[40], [41], [42]], [1, 2, 3], { type: 'length', length: 3 }));
    expect(await d.generate(input(), params())).toMatchObject({ tokens: [40, 41, 42], finishReason: 'length' });
    engine.behave(answer([[40], [41, 42, 43, 44]], [1, 3], { type: 'length' }));
    expect((await failure(d.generate(input(), params()))).code).toBe('ENGINE_BAD_RESPONSE');
    engine.behave((_r, res) => { sseHead(res); sse(res, { error: { message: 'input_embeds needs --disable-radix-cache', code: 400 } }); res.end(); });
    expect((await failure(d.generate(input(), params()))).code).toBe('ENGINE_REJECTED');
  });
});
