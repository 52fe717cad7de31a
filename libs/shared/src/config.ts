import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { AppError } from './errors.js';

/**
 * The one configuration schema. Every setting has an environment variable, a default, a one-line doc and a secret
 * flag; nothing outside this file reads `process.env`. Apps call `loadConfig()` once and pass the typed object on.
 */
interface Setting<S extends z.ZodType> {
  env: string;
  schema: S;
  doc: string;
  secret: boolean;
}

function setting<S extends z.ZodType>(env: string, schema: S, doc: string, secret = false): Setting<S> {
  return { env, schema, doc, secret };
}

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** The model shipped in this repository: `models/e2llm-tiny`, found relative to this file (src/ or dist/). */
export const BUNDLED_MODEL_PATH = fileURLToPath(new URL('../../../models/e2llm-tiny', import.meta.url));

export const SETTINGS = {
  modelPath: setting('MODEL_PATH', z.string().min(1).default(BUNDLED_MODEL_PATH), 'Folder of the model package (manifest.json and its files).'),
  executionProviders: setting(
    'EXECUTION_PROVIDERS',
    z
      .string()
      .default('cpu')
      .transform((s) => s.split(',').map((p) => p.trim()).filter(Boolean))
      .pipe(z.array(z.enum(['cpu', 'cuda'])).min(1)),
    'onnxruntime execution providers in order of preference, e.g. "cuda,cpu" on a GPU image.',
  ),
  intraOpThreads: setting('INTRA_OP_THREADS', int(0, 1024).default(0), 'onnxruntime intra-op threads per session (0: onnxruntime decides).'),
  graphOptimization: setting(
    'GRAPH_OPTIMIZATION',
    z.enum(['disabled', 'basic', 'extended', 'all']).default('all'),
    'onnxruntime graph optimisation level.',
  ),
  encoderMaxBatchTokens: setting(
    'ENCODER_MAX_BATCH_TOKENS',
    int(1, 1 << 20).default(8192),
    'Token budget of one encoder batch: batch size x longest chunk (padded), as TEI max-batch-tokens.',
  ),
  encoderMaxBatchSize: setting('ENCODER_MAX_BATCH_SIZE', int(1, 4096).default(64), 'The most chunks in one encoder batch.'),
  maxDocumentChars: setting('MAX_DOCUMENT_CHARS', int(1, 1 << 30).default(4_000_000), 'The most characters one document may have.'),
  maxQuestionChars: setting('MAX_QUESTION_CHARS', int(1, 1 << 20).default(4000), 'The most characters a question or instruction may have.'),
  maxNewTokensLimit: setting('MAX_NEW_TOKENS_LIMIT', int(1, 1 << 16).default(1024), 'The largest maxNewTokens a request may ask for.'),
  logLevel: setting('LOG_LEVEL', z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'), 'Log level.'),
} as const;

type Settings = typeof SETTINGS;
export type Config = { [K in keyof Settings]: z.output<Settings[K]['schema']> };
export type ConfigKey = keyof Config;

/**
 * Parses the environment (and explicit overrides, e.g. CLI flags) into a typed Config. Throws CONFIG_INVALID naming
 * every bad key; the value of a secret is never printed.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Partial<Record<ConfigKey, unknown>> = {},
): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, def] of Object.entries(SETTINGS) as [ConfigKey, Setting<z.ZodType>][]) {
    const raw = key in overrides && overrides[key] !== undefined ? overrides[key] : emptyToUndefined(env[def.env]);
    const parsed = def.schema.safeParse(raw);
    if (parsed.success) {
      out[key] = parsed.data;
    } else {
      const shown = def.secret ? '(secret, not shown)' : JSON.stringify(raw);
      problems.push(`${def.env}=${shown}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
    }
  }
  if (problems.length > 0) {
    throw new AppError('CONFIG_INVALID', `invalid configuration: ${problems.join(', ')}`, { keys: problems.length });
  }
  return out as Config;
}

function emptyToUndefined(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v;
}

/** Markdown table of every setting, for the README. */
export function describeSettings(): string {
  const rows = Object.values(SETTINGS).map((s) => {
    const d = s.schema.safeParse(undefined);
    const def = s.secret ? '(secret)' : d.success ? `\`${JSON.stringify(d.data)}\`` : '(required)';
    return `| \`${s.env}\` | ${def} | ${s.doc} |`;
  });
  return ['| variable | default | meaning |', '|---|---|---|', ...rows].join('\n');
}
