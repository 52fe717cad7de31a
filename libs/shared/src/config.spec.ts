import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BUNDLED_MODEL_PATH, describeSettings, loadConfig, SETTINGS, type Config } from './config.js';
import { AppError } from './errors.js';

const DEFAULTS: Partial<Config> = {
  modelPath: BUNDLED_MODEL_PATH,
  executionProviders: ['cpu'],
  intraOpThreads: 0,
  graphOptimization: 'all',
  encoderMaxBatchTokens: 2048,
  encoderMaxBatchSize: 8,
  maxDocumentChars: 4_000_000,
  maxQuestionChars: 4000,
  maxNewTokensLimit: 1024,
  logLevel: 'info',
};

function configError(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('CONFIG_INVALID');
    return err as AppError;
  }
  throw new Error('expected CONFIG_INVALID, but nothing was thrown');
}

describe('loadConfig', () => {
  it('loads every default from an empty env', () => {
    expect(loadConfig({})).toMatchObject(DEFAULTS);
  });

  it('defaults MODEL_PATH to the bundled model package', () => {
    expect(existsSync(join(loadConfig({}).modelPath, 'manifest.json'))).toBe(true);
  });

  it('ignores unrelated env variables', () => {
    expect(loadConfig({ PATH: '/usr/bin', HOME: '/root', UNRELATED: 'x' })).toMatchObject(DEFAULTS);
  });

  it('coerces env strings to typed values', () => {
    const config = loadConfig({
      MODEL_PATH: '/models/other',
      EXECUTION_PROVIDERS: 'cuda, cpu',
      INTRA_OP_THREADS: '8',
      GRAPH_OPTIMIZATION: 'basic',
      ENCODER_MAX_BATCH_TOKENS: '16384',
      ENCODER_MAX_BATCH_SIZE: '32',
      MAX_DOCUMENT_CHARS: '1000',
      MAX_QUESTION_CHARS: '200',
      MAX_NEW_TOKENS_LIMIT: '64',
      LOG_LEVEL: 'debug',
    });
    expect(config).toMatchObject({
      modelPath: '/models/other',
      executionProviders: ['cuda', 'cpu'],
      intraOpThreads: 8,
      graphOptimization: 'basic',
      encoderMaxBatchTokens: 16384,
      encoderMaxBatchSize: 32,
      maxDocumentChars: 1000,
      maxQuestionChars: 200,
      maxNewTokensLimit: 64,
      logLevel: 'debug',
    } satisfies Partial<Config>);
  });

  it.each([
    ['cuda, cpu', ['cuda', 'cpu']],
    ['cuda,cpu', ['cuda', 'cpu']],
    [' cpu ', ['cpu']],
    ['cuda,,cpu,', ['cuda', 'cpu']],
  ])('splits EXECUTION_PROVIDERS %j', (raw, want) => {
    expect(loadConfig({ EXECUTION_PROVIDERS: raw }).executionProviders).toEqual(want);
  });

  it.each([
    ['EXECUTION_PROVIDERS', 'gpu'],
    ['EXECUTION_PROVIDERS', 'cuda,tpu'],
    ['EXECUTION_PROVIDERS', ','],
    ['INTRA_OP_THREADS', 'four'],
    ['INTRA_OP_THREADS', '-1'],
    ['INTRA_OP_THREADS', '1.5'],
    ['INTRA_OP_THREADS', '1025'],
    ['ENCODER_MAX_BATCH_SIZE', '-1'],
    ['MAX_DOCUMENT_CHARS', '12abc'],
    ['GRAPH_OPTIMIZATION', 'ALL'],
    ['LOG_LEVEL', 'verbose'],
  ])('rejects %s=%j, naming the key', (key, value) => {
    const err = configError(() => loadConfig({ [key]: value }));
    expect(err.message).toContain(key);
    expect(err.details).toEqual({ keys: 1 });
  });

  it('names ALL bad keys in one CONFIG_INVALID error', () => {
    const err = configError(() =>
      loadConfig({
        EXECUTION_PROVIDERS: 'gpu',
        INTRA_OP_THREADS: 'x',
        LOG_LEVEL: 'loud',
        MAX_QUESTION_CHARS: '0',
        GRAPH_OPTIMIZATION: 'basic', // valid: not named
      }),
    );
    for (const key of ['EXECUTION_PROVIDERS', 'INTRA_OP_THREADS', 'LOG_LEVEL', 'MAX_QUESTION_CHARS']) {
      expect(err.message).toContain(key);
    }
    expect(err.message).not.toContain('GRAPH_OPTIMIZATION');
    expect(err.details).toEqual({ keys: 4 });
  });

  it('lets overrides beat env', () => {
    const config = loadConfig(
      { LOG_LEVEL: 'debug', INTRA_OP_THREADS: '4', EXECUTION_PROVIDERS: 'cuda' },
      { logLevel: 'warn', intraOpThreads: 2 },
    );
    expect(config.logLevel).toBe('warn');
    expect(config.intraOpThreads).toBe(2);
    expect(config.executionProviders).toEqual(['cuda']); // not overridden: env still applies
  });

  it('lets an override replace an invalid env value', () => {
    expect(loadConfig({ LOG_LEVEL: 'loud' }, { logLevel: 'error' }).logLevel).toBe('error');
  });

  it('takes the encoder batching of the first execution provider unless it is set', () => {
    expect(loadConfig({ EXECUTION_PROVIDERS: 'cuda,cpu' })).toMatchObject({ encoderMaxBatchSize: 64, encoderMaxBatchTokens: 16384 });
    expect(loadConfig({ EXECUTION_PROVIDERS: 'cpu' })).toMatchObject({ encoderMaxBatchSize: 8, encoderMaxBatchTokens: 2048 });
    expect(loadConfig({ EXECUTION_PROVIDERS: 'cuda', ENCODER_MAX_BATCH_SIZE: '16' })).toMatchObject({ encoderMaxBatchSize: 16, encoderMaxBatchTokens: 16384 });
  });

  it('treats an undefined override as absent', () => {
    expect(loadConfig({ LOG_LEVEL: 'debug' }, { logLevel: undefined }).logLevel).toBe('debug');
  });

  it('validates overrides too, naming the env key', () => {
    const err = configError(() => loadConfig({}, { logLevel: 'loud', encoderMaxBatchSize: -1 }));
    expect(err.message).toContain('LOG_LEVEL');
    expect(err.message).toContain('ENCODER_MAX_BATCH_SIZE');
  });

  it('coerces string overrides like env values (CLI flags arrive as strings)', () => {
    expect(loadConfig({}, { maxQuestionChars: '123', executionProviders: 'cuda, cpu' })).toMatchObject({
      maxQuestionChars: 123,
      executionProviders: ['cuda', 'cpu'],
    });
  });

  it('counts empty and whitespace-only env values as unset', () => {
    const env: Record<string, string> = {};
    for (const s of Object.values(SETTINGS)) env[s.env] = '';
    expect(loadConfig(env)).toMatchObject(DEFAULTS);
    for (const s of Object.values(SETTINGS)) env[s.env] = '   ';
    expect(loadConfig(env)).toMatchObject(DEFAULTS);
  });

  it('does not read process.env when an env is passed', () => {
    const saved = process.env.LOG_LEVEL;
    process.env.LOG_LEVEL = 'trace';
    try {
      expect(loadConfig({}).logLevel).toBe('info');
    } finally {
      if (saved === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = saved;
    }
  });
});

describe('SETTINGS / describeSettings', () => {
  it('give every setting a distinct SCREAMING_SNAKE env name and a doc line', () => {
    const names = Object.values(SETTINGS).map((s) => s.env);
    expect(new Set(names).size).toBe(names.length);
    for (const s of Object.values(SETTINGS)) {
      expect(s.env).toMatch(/^[A-Z][A-Z0-9_]*$/);
      expect(s.doc.trim()).not.toBe('');
    }
  });

  it('lists every env variable with its default in the README table', () => {
    const table = describeSettings();
    for (const s of Object.values(SETTINGS)) expect(table).toContain(`| \`${s.env}\` |`);
    expect(table).toContain('`["cpu"]`');
    expect(table).toContain('`4000000`');
  });
});

describe('engine backends', () => {
  const fail = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (err) {
      expect((err as AppError).code).toBe('CONFIG_INVALID');
      return (err as AppError).message;
    }
    throw new Error('loadConfig accepted it');
  };

  it('default to the in-process ONNX backends', () => {
    expect(loadConfig({})).toMatchObject({ decoderBackend: 'onnx', encoderBackend: 'onnx', decoderEngineTimeoutMs: 60_000, decoderEngineConcurrency: 16 });
  });

  it('need a URL (and for vLLM a model name) for a remote decoder, naming each missing key', () => {
    expect(fail({ DECODER_BACKEND: 'vllm' })).toMatch(/DECODER_ENGINE_URL: required when DECODER_BACKEND=vllm.*DECODER_ENGINE_MODEL: required/);
    expect(fail({ DECODER_BACKEND: 'sglang' })).toMatch(/DECODER_ENGINE_URL: required when DECODER_BACKEND=sglang/);
    expect(loadConfig({ DECODER_BACKEND: 'sglang', DECODER_ENGINE_URL: 'http://sglang:30000' }).decoderEngineUrl).toBe('http://sglang:30000');
    expect(loadConfig({ DECODER_BACKEND: 'vllm', DECODER_ENGINE_URL: 'http://vllm:8000', DECODER_ENGINE_MODEL: 'e2llm' }).decoderEngineModel).toBe('e2llm');
  });

  it('refuse evidence by attention with an engine decoder (engines do not return attention)', () => {
    expect(fail({ DECODER_BACKEND: 'sglang', DECODER_ENGINE_URL: 'http://sglang:30000', EVIDENCE_SCORER: 'attention' })).toMatch(/EVIDENCE_SCORER="attention": needs the decoder's attention/);
  });

  it('need TEI\'s URL and the model identity it must serve, as model_id@revision', () => {
    expect(fail({ ENCODER_BACKEND: 'tei' })).toMatch(/ENCODER_ENGINE_URL: required.*ENCODER_ENGINE_MODEL_ID: required/);
    expect(fail({ ENCODER_BACKEND: 'tei', ENCODER_ENGINE_URL: 'http://tei', ENCODER_ENGINE_MODEL_ID: 'gte-large' })).toMatch(/ENCODER_ENGINE_MODEL_ID/);
    expect(loadConfig({ ENCODER_BACKEND: 'tei', ENCODER_ENGINE_URL: 'http://tei', ENCODER_ENGINE_MODEL_ID: 'Alibaba-NLP/gte-large-en-v1.5@a0d6174' }).encoderEngineModelId).toBe('Alibaba-NLP/gte-large-en-v1.5@a0d6174');
  });
});
