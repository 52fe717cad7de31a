import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { AppError } from './errors.js';
import { ENCODE_CHILD_MAX_CHUNKS } from './jobs/pipeline.jobs.js';
import { EVIDENCE_SCORERS } from './task.js';

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
/** "true"/"false"/"1"/"0" (z.coerce.boolean would read "false" as true). */
const bool = z.union([z.boolean(), z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1')]);

/** The model shipped in this repository: `models/e2llm-tiny`, found relative to this file (src/ or dist/). */
export const BUNDLED_MODEL_PATH = fileURLToPath(new URL('../../../models/e2llm-tiny', import.meta.url));

/**
 * Encoder batching by execution provider, set from the sweep of `npm run bench` (docs/benchmarks.md, section 2). On
 * CPU small batches win: a batch of 8 chunks of up to 256 tokens keeps each layer's activations and attention scores
 * (8 x 4 heads x 256 x 256 floats, 8 MiB) near the caches, while 64 chunks run 1.6x slower on the same chunks, padding
 * aside. A GPU wants large batches to fill its cores; 16,384 tokens is TEI's default max-batch-tokens.
 */
export const ENCODER_BATCH_DEFAULTS: Record<'cpu' | 'cuda', { maxBatchSize: number; maxBatchTokens: number }> = {
  cpu: { maxBatchSize: 8, maxBatchTokens: 2048 },
  cuda: { maxBatchSize: 64, maxBatchTokens: 16384 },
};

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
    int(0, 1 << 20).default(0),
    'Token budget of one encoder batch: batch size x longest chunk (padded), as TEI max-batch-tokens. 0: by the first execution provider, cpu 2048, cuda 16384 (measured: docs/benchmarks.md, section 2).',
  ),
  encoderMaxBatchSize: setting(
    'ENCODER_MAX_BATCH_SIZE',
    int(0, 4096).default(0),
    'The most chunks in one encoder batch. 0: by the first execution provider, cpu 8, cuda 64.',
  ),
  maxDocumentChars: setting('MAX_DOCUMENT_CHARS', int(1, 1 << 30).default(4_000_000), 'The most characters one document may have.'),
  maxQuestionChars: setting('MAX_QUESTION_CHARS', int(1, 1 << 20).default(4000), 'The most characters a question or instruction may have.'),
  maxNewTokensLimit: setting('MAX_NEW_TOKENS_LIMIT', int(1, 1 << 16).default(1024), 'The largest maxNewTokens a request may ask for.'),
  evidenceScorer: setting(
    'EVIDENCE_SCORER',
    z.enum(EVIDENCE_SCORERS).default('bm25'),
    'How evidence is ranked: bm25 (the question against chunk texts), attention (the decoder\'s attention while it answers; needs a package whose decoder exports it), or fusion (reciprocal rank of both). docs/evaluation.md measures each.',
  ),
  decoderBackend: setting(
    'DECODER_BACKEND',
    z.enum(['onnx', 'vllm', 'sglang']).default('onnx'),
    'What runs the decoder: onnx (in-process onnxruntime), vllm (an OpenAI-compatible vLLM server started with --enable-prompt-embeds) or sglang (an SGLang server\'s /generate with input_embeds). docs/gpu-fleet.md.',
  ),
  decoderEngineUrl: setting('DECODER_ENGINE_URL', z.string().url().optional(), 'Base URL of the decoder engine (vLLM: its /v1/completions lies under it; SGLang: its /generate). Required unless DECODER_BACKEND=onnx.'),
  decoderEngineModel: setting('DECODER_ENGINE_MODEL', z.string().min(1).optional(), 'Model name sent to vLLM (its --served-model-name, or a LoRA adapter\'s name). Required for vllm.'),
  decoderEngineApiKey: setting('DECODER_ENGINE_API_KEY', z.string().min(1).optional(), 'Bearer key of the decoder engine (vLLM --api-key, SGLang --api-key).', true),
  decoderEngineTimeoutMs: setting(
    'DECODER_ENGINE_TIMEOUT_MS',
    int(100, 3_600_000).default(60_000),
    'The longest wait for the decoder engine\'s answer to start, or for its next streamed token; past it the job is retried (ENGINE_UNAVAILABLE).',
  ),
  decoderEngineConcurrency: setting('DECODER_ENGINE_CONCURRENCY', int(1, 4096).default(16), 'Requests one decoder worker process has in flight at the engine at once (the engine batches them).'),
  promptEmbedsMaxNorm: setting(
    'PROMPT_EMBEDS_MAX_NORM',
    z.coerce.number().positive().default(1000),
    'The largest L2 norm one prompt-embedding row may have before it is sent to a decoder engine; larger ones fail the job (PROMPT_EMBEDS_INVALID).',
  ),
  encoderBackend: setting(
    'ENCODER_BACKEND',
    z.enum(['onnx', 'tei']).default('onnx'),
    'What runs the chunk encoder: onnx (in-process onnxruntime) or tei (Hugging Face text-embeddings-inference\'s /embed). Set it alike on encoder and decoder workers: soft-prompt keys carry the backend\'s model identity.',
  ),
  encoderPrecision: setting(
    'ENCODER_PRECISION',
    z.enum(['f32', 'int8']).default('f32'),
    'Which graph the in-process encoder runs: f32 (encoder.onnx) or int8 (the package\'s encoder.int8Onnx, weight MatMuls dynamically quantized: faster on CPU, vectors within cosine 0.999 of f32). Set it alike on the API and both workers: soft-prompt keys carry the graph\'s digest.',
  ),
  encoderEngineUrl: setting('ENCODER_ENGINE_URL', z.string().url().optional(), 'Base URL of text-embeddings-inference. Required when ENCODER_BACKEND=tei.'),
  encoderEngineModelId: setting(
    'ENCODER_ENGINE_MODEL_ID',
    z.string().regex(/^[A-Za-z0-9._\/-]+@[A-Za-z0-9._-]+$/, 'model_id@revision, as TEI /info reports model_id and model_sha').optional(),
    'The embedding model TEI must serve, as model_id@model_sha (checked against its /info at start); part of the soft-prompt keys. Required when ENCODER_BACKEND=tei.',
  ),
  encoderEngineApiKey: setting('ENCODER_ENGINE_API_KEY', z.string().min(1).optional(), 'Bearer key of text-embeddings-inference (its --api-key).', true),
  encoderEngineTimeoutMs: setting('ENCODER_ENGINE_TIMEOUT_MS', int(100, 3_600_000).default(60_000), 'Time limit of one request to text-embeddings-inference.'),
  engineStartTimeoutMs: setting(
    'ENGINE_START_TIMEOUT_MS',
    int(0, 3_600_000).default(300_000),
    'How long a worker waits at start for its engines (vLLM, SGLang, TEI) to answer while they are unreachable or loading (retried every few seconds); other failures stop the start at once.',
  ),
  softPromptDtype: setting('SOFT_PROMPT_DTYPE', z.enum(['f32', 'f16']).default('f32'), 'Number format of stored soft prompts (f16 halves storage; f32 keeps answers bit-identical to e2llm ask).'),

  port: setting('PORT', int(0, 65535).default(8080), 'HTTP port of the API.'),
  host: setting('HOST', z.string().min(1).default('127.0.0.1'), 'Address the API listens on.'),
  maxUploadBytes: setting('MAX_UPLOAD_BYTES', int(1, 1 << 30).default(20 * 1024 * 1024), 'The largest request body or uploaded file, in bytes.'),
  jobTtlSeconds: setting('JOB_TTL_SECONDS', int(60, 365 * 24 * 3600).default(7 * 24 * 3600), 'How long the records of a job or document that has not ended are kept in Redis (a backstop: accepted jobs always end).'),
  retentionSeconds: setting(
    'RETENTION_SECONDS',
    int(60, 365 * 24 * 3600).default(7 * 24 * 3600),
    'How long finished data is kept: a job this long after it ended, a document this long after it was encoded or its last job ended. Then the retention sweep deletes it as DELETE does (source, result, records, chunk references, soft prompts nothing else references).',
  ),
  retentionSweepSeconds: setting('RETENTION_SWEEP_SECONDS', int(1, 24 * 3600).default(60), 'How often the API looks for finished data past RETENTION_SECONDS, and retries blob deletions that failed.'),

  redisUrl: setting('REDIS_URL', z.string().url().default('redis://127.0.0.1:6379'), 'Redis for queues and job records (a password in the URL is allowed).', true),
  redisPrefix: setting('REDIS_PREFIX', z.string().regex(/^[A-Za-z0-9:_{}-]+$/).default('e2llm'), 'Prefix of every Redis key; a hash tag such as {e2llm} keeps a flow on one Redis Cluster slot.'),

  blobStore: setting('BLOB_STORE', z.enum(['local', 's3']).default('local'), 'Where sources, soft prompts and results are stored.'),
  dataDir: setting('DATA_DIR', z.string().min(1).default('.data'), 'Folder of the local blob store.'),
  s3Endpoint: setting('S3_ENDPOINT', z.string().url().optional(), 'S3 endpoint URL (MinIO or another S3-compatible server); unset for AWS.'),
  s3Region: setting('S3_REGION', z.string().min(1).default('us-east-1'), 'S3 region.'),
  s3Bucket: setting('S3_BUCKET', z.string().min(3).default('e2llm'), 'S3 bucket.'),
  s3ForcePathStyle: setting('S3_FORCE_PATH_STYLE', bool.default(false), 'Path-style S3 URLs (MinIO and most S3-compatible servers need it).'),
  s3AccessKeyId: setting('S3_ACCESS_KEY_ID', z.string().min(1).optional(), 'S3 access key id (unset: the SDK default chain).', true),
  s3SecretAccessKey: setting('S3_SECRET_ACCESS_KEY', z.string().min(1).optional(), 'S3 secret access key.', true),

  plannerThreads: setting(
    'PLANNER_THREADS',
    int(1, 64).default(1),
    "Threads for the API's request work off the event loop: parsing large JSON bodies, cutting and tokenizing documents before a job is accepted (each holds the package's tokenizers).",
  ),
  encodeJobMaxChunks: setting('ENCODE_JOB_MAX_CHUNKS', int(1, ENCODE_CHILD_MAX_CHUNKS).default(64), 'The most chunks one encode child job carries.'),
  encoderConcurrency: setting('ENCODER_CONCURRENCY', int(1, 64).default(1), 'Encode jobs one encoder worker process runs at once.'),
  decoderConcurrency: setting('DECODER_CONCURRENCY', int(1, 64).default(1), 'Decode jobs one decoder worker process runs at once.'),
  softPromptCacheMb: setting(
    'SOFT_PROMPT_CACHE_MB',
    int(0, 1 << 20).default(64),
    'Decoded soft prompts a decoder worker keeps in memory, in MiB (0: none): a document asked again skips reading one blob per chunk.',
  ),
  cutCacheMb: setting(
    'CUT_CACHE_MB',
    int(0, 1 << 20).default(16),
    'Chunk lists of texts submitted lately that the API keeps in memory, per tenant, in MiB (0: none): the same text submitted again is not cut again.',
  ),
  blobFetchConcurrency: setting('BLOB_FETCH_CONCURRENCY', int(1, 1024).default(32), 'Blob reads or writes in flight at once per job.'),

  webhookSecret: setting('WEBHOOK_SECRET', z.string().regex(/^whsec_[A-Za-z0-9+/=]+$/).optional(), 'Standard Webhooks signing secret (whsec_...); jobs with a webhook are refused without it.', true),
  webhookTimeoutMs: setting('WEBHOOK_TIMEOUT_MS', int(100, 120_000).default(10_000), 'Timeout of one webhook delivery attempt.'),
  webhookMaxAttempts: setting('WEBHOOK_MAX_ATTEMPTS', int(1, 50).default(10), 'Delivery attempts before a webhook is dead-lettered (exponential backoff between).'),
  webhookBackoffMs: setting('WEBHOOK_BACKOFF_MS', int(10, 3_600_000).default(2000), 'First retry delay of a webhook; it doubles each attempt.'),
  webhookAllowLoopback: setting('WEBHOOK_ALLOW_LOOPBACK', bool.default(false), 'Allow webhook targets on loopback addresses (tests and local development only).'),
  webhookAllowPrivate: setting('WEBHOOK_ALLOW_PRIVATE', bool.default(false), 'Allow webhook targets on private, link-local and other internal addresses.'),

  apiKeys: setting(
    'API_KEYS',
    z
      .string()
      .default('')
      .transform((v, ctx) => {
        const out: { tenant: string; sha256: string }[] = [];
        for (const entry of v.split(',').map((e) => e.trim()).filter(Boolean)) {
          const m = /^([A-Za-z0-9][A-Za-z0-9_-]{0,63}):(?:sha256:([0-9a-f]{64})|(.{16,}))$/.exec(entry);
          if (!m) {
            ctx.addIssue({ code: 'custom', message: 'each entry is tenant:key (a key of 16+ characters) or tenant:sha256:<64 hex>' });
            return z.NEVER;
          }
          out.push({ tenant: m[1]!, sha256: m[2] ?? createHash('sha256').update(m[3]!).digest('hex') });
        }
        return out;
      }),
    'API keys mapped to tenants: "tenant:key,..." or "tenant:sha256:<hex>". Unset: one anonymous tenant, loopback only.',
    true,
  ),
  adminApiKey: setting('ADMIN_API_KEY', z.string().min(16).optional(), 'Key for admin routes (the queue dashboard).', true),
  rateLimitPerMinute: setting('RATE_LIMIT_PER_MINUTE', int(1, 1_000_000).default(600), 'Job and document creations one tenant may make per minute.'),
  maxQueuedJobsPerTenant: setting('MAX_QUEUED_JOBS_PER_TENANT', int(1, 10_000_000).default(1000), 'Jobs one tenant may have unfinished at once.'),
  batchMaxItems: setting(
    'BATCH_MAX_ITEMS',
    // At most 10,000: the API measures every item's prompt before answering (about 3.4 ms an item here).
    int(1, 10_000).default(1000),
    'The most items one batch (POST /v1/batches) may hold; each item is one job, counted against MAX_QUEUED_JOBS_PER_TENANT.',
  ),
  maxEncodeQueueDepth: setting('MAX_ENCODE_QUEUE_DEPTH', int(1, 100_000_000).default(20_000), 'Waiting encode jobs above which new work is refused with 429 (backpressure).'),
  maxPdfPages: setting('MAX_PDF_PAGES', int(1, 100_000).default(2000), 'The most pages an uploaded PDF may have.'),
  maxDocxBytes: setting(
    'MAX_DOCX_BYTES',
    int(1, 1 << 30).default(64 * 1024 * 1024),
    'The most bytes a DOCX may decompress to (zip bombs); held outside the extractor heap cap, so it counts in the extraction memory budget.',
  ),
  extractThreads: setting('EXTRACT_THREADS', int(1, 64).default(2), 'PDF, DOCX and HTML uploads parsed at once, each on a thread of its own.'),
  extractMemoryMb: setting('EXTRACT_MEMORY_MB', int(16, 8192).default(256), 'Heap cap of one extraction thread, in MiB.'),
  extractQueue: setting('EXTRACT_QUEUE', int(0, 1024).default(8), 'Uploads that may wait for an extraction thread; past that 429 OVERLOADED with Retry-After.'),
  extractTimeoutMs: setting('EXTRACT_TIMEOUT_MS', int(100, 600_000).default(30_000), 'Time limit for extracting text from an upload.'),
  workerLockMs: setting('WORKER_LOCK_MS', int(1000, 3_600_000).default(30_000), 'BullMQ lock of a running job, renewed while it runs; a killed worker\'s job is retaken after it lapses.'),
  workerStalledIntervalMs: setting('WORKER_STALLED_INTERVAL_MS', int(500, 3_600_000).default(15_000), 'How often workers look for stalled jobs.'),

  otelEndpoint: setting('OTEL_EXPORTER_OTLP_ENDPOINT', z.string().url().optional(), 'OTLP/HTTP endpoint for traces (e.g. http://otel-collector:4318); unset: no export.'),
  metricsPort: setting('METRICS_PORT', int(0, 65535).default(0), 'Port of a worker process\'s /metrics (0: none; the API serves /metrics on PORT).'),

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
  if (problems.length === 0) problems.push(...engineProblems(out as Config));
  if (problems.length === 0) resolveEncoderBatching(out);
  if (problems.length > 0) {
    throw new AppError('CONFIG_INVALID', `invalid configuration: ${problems.join(', ')}`, { keys: problems.length });
  }
  return out as Config;
}

/** ENCODER_MAX_BATCH_SIZE and ENCODER_MAX_BATCH_TOKENS left at 0 take the first execution provider's defaults. */
function resolveEncoderBatching(c: Record<string, unknown>): void {
  const defaults = ENCODER_BATCH_DEFAULTS[(c as Config).executionProviders[0]!];
  if (c.encoderMaxBatchSize === 0) c.encoderMaxBatchSize = defaults.maxBatchSize;
  if (c.encoderMaxBatchTokens === 0) c.encoderMaxBatchTokens = defaults.maxBatchTokens;
}

/** The rules between settings of the engine backends (each names the keys involved). */
function engineProblems(c: Config): string[] {
  const problems: string[] = [];
  if (c.decoderBackend !== 'onnx' && !c.decoderEngineUrl) problems.push(`DECODER_ENGINE_URL: required when DECODER_BACKEND=${c.decoderBackend}`);
  if (c.decoderBackend === 'vllm' && !c.decoderEngineModel) problems.push('DECODER_ENGINE_MODEL: required when DECODER_BACKEND=vllm');
  if (c.decoderBackend !== 'onnx' && c.evidenceScorer !== 'bm25') {
    problems.push(`EVIDENCE_SCORER=${JSON.stringify(c.evidenceScorer)}: needs the decoder's attention, which DECODER_BACKEND=${c.decoderBackend} does not return; use bm25`);
  }
  if (c.encoderBackend === 'tei' && !c.encoderEngineUrl) problems.push('ENCODER_ENGINE_URL: required when ENCODER_BACKEND=tei');
  if (c.encoderBackend === 'tei' && !c.encoderEngineModelId) problems.push('ENCODER_ENGINE_MODEL_ID: required when ENCODER_BACKEND=tei');
  return problems;
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
