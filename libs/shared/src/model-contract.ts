import { z } from 'zod';

/**
 * The model package contract (docs/model-package.md): the manifest schema and the tensor names each ONNX graph must
 * have. The workers and the CLI validate a package against this before loading it, and check the loaded sessions.
 */
export const MANIFEST_SCHEMA_VERSION = 1;

/** A file inside the package folder: a plain relative path, never absolute and never climbing out. */
const PackageFile = z
  .string()
  .min(1)
  .refine((p) => !p.startsWith('/') && !p.split(/[\\/]/).includes('..'), 'must be a relative path inside the package');

const TokenId = z.number().int().nonnegative();

export const TaskType = z.enum(['qa', 'summarize', 'reconstruct', 'instruct']);
export type TaskType = z.infer<typeof TaskType>;

export const EncoderManifest = z.object({
  /** ONNX graph: input_ids, attention_mask int64 [batch, tokens] -> chunk_embeddings f32 [batch, width]. */
  onnx: PackageFile,
  /**
   * The same graph with its weight MatMuls dynamically quantized to int8 (training/scripts/quantize_encoder.py), run
   * when ENCODER_PRECISION=int8; absent when the package has none.
   */
  int8Onnx: PackageFile.optional(),
  /** Hugging Face tokenizer.json; the runtime encodes without special tokens and adds clsTokenId itself. */
  tokenizer: PackageFile,
  /** The most tokens one chunk may have, the CLS token included. */
  maxTokens: z.number().int().min(2),
  /** Width of chunk_embeddings. */
  width: z.number().int().positive(),
  /** How token states become the one chunk vector (inside encoder.onnx). */
  pooling: z.enum(['cls', 'mean', 'pma']),
  /** Prepended to every chunk's ids; null when the encoder takes none. */
  clsTokenId: TokenId.nullable(),
  /** Padding id for batched chunks (masked out by attention_mask). */
  padTokenId: TokenId,
});

export const AdapterManifest = z.object({
  /** ONNX graph: chunk_embeddings f32 [n, inputWidth] -> soft_tokens f32 [n, outputWidth]. */
  onnx: PackageFile,
  /** mlp: the paper's v1 2-layer MLP with GELU; pma: v2, whose pooling runs in the encoder. */
  kind: z.enum(['mlp', 'pma']),
  inputWidth: z.number().int().positive(),
  outputWidth: z.number().int().positive(),
});

export const DecoderManifest = z.object({
  /** ONNX graph with inputs_embeds, attention_mask, position_ids, past_key_values.{i}.key|value. */
  onnx: PackageFile,
  tokenizer: PackageFile,
  /** The token-embedding table as raw little-endian numbers, [vocabSize, hiddenSize]. */
  embeddings: z.object({
    file: PackageFile,
    dtype: z.enum(['f32', 'f16']),
    shape: z.tuple([z.number().int().positive(), z.number().int().positive()]),
  }),
  hiddenSize: z.number().int().positive(),
  layers: z.number().int().positive(),
  heads: z.number().int().positive(),
  /** Key/value heads: fewer than heads in grouped-query models. */
  kvHeads: z.number().int().positive(),
  headSize: z.number().int().positive(),
  vocabSize: z.number().int().positive(),
  /** The most positions (prompt, soft tokens and generated tokens) the decoder attends over. */
  window: z.number().int().positive(),
  /** Prepended to the prompt; null when the decoder takes none. */
  bosTokenId: TokenId.nullable(),
  eosTokenIds: z.array(TokenId).min(1),
  padTokenId: TokenId,
  /** dtype of inputs_embeds, the KV cache and logits. */
  dtype: z.enum(['f32', 'f16']),
  /**
   * Name of an extra decoder output: the last position's attention over every position (past and new), averaged
   * over heads and layers, f32 [batch, past+seq]. Evidence by attention reads it; packages without it still load.
   */
  attentionOutput: z.string().min(1).optional(),
});

export const PromptManifest = z.object({
  /** Where the soft tokens go in each template. */
  placeholder: z.string().min(1),
  /** One template per task; {question} and {instruction} are filled in after splitting at the placeholder. */
  templates: z.record(TaskType, z.string()),
  /** The chunking the model was trained with. */
  chunking: z.object({
    chunkChars: z.number().int().min(16),
    overlapChars: z.number().int().nonnegative(),
  }),
});

export const ModelManifest = z
  .object({
    schemaVersion: z.literal(MANIFEST_SCHEMA_VERSION),
    name: z.string().min(1),
    version: z.string().min(1),
    encoder: EncoderManifest,
    adapter: AdapterManifest,
    decoder: DecoderManifest,
    prompt: PromptManifest,
    /** PyTorch reference inputs and outputs for the parity test. */
    golden: PackageFile.optional(),
    /**
     * Languages the model was trained on, as BCP 47 tags (`["en"]`): shown by GET /v1/models so nobody has to find
     * out by asking in another language. Absent: not declared (listed as `[]`).
     */
    languages: z.array(z.string().regex(/^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$/, 'must be a BCP 47 tag such as "en"')).optional(),
  })
  .superRefine((m, ctx) => {
    const issue = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (m.adapter.inputWidth !== m.encoder.width) issue(['adapter', 'inputWidth'], 'must equal encoder.width');
    if (m.adapter.outputWidth !== m.decoder.hiddenSize) issue(['adapter', 'outputWidth'], 'must equal decoder.hiddenSize');
    const [rows, cols] = m.decoder.embeddings.shape;
    if (rows !== m.decoder.vocabSize || cols !== m.decoder.hiddenSize) {
      issue(['decoder', 'embeddings', 'shape'], 'must be [vocabSize, hiddenSize]');
    }
    if (m.decoder.heads % m.decoder.kvHeads !== 0) issue(['decoder', 'kvHeads'], 'must divide heads');
    if (m.prompt.chunking.overlapChars >= m.prompt.chunking.chunkChars) {
      issue(['prompt', 'chunking', 'overlapChars'], 'must be smaller than chunkChars');
    }
    for (const task of TaskType.options) {
      const t = m.prompt.templates[task];
      if (t === undefined) issue(['prompt', 'templates', task], 'missing template');
      else if (t.split(m.prompt.placeholder).length !== 2) {
        issue(['prompt', 'templates', task], `must contain the placeholder ${m.prompt.placeholder} exactly once`);
      }
    }
  });
export type ModelManifest = z.infer<typeof ModelManifest>;

/** Tensor names, as Hugging Face exporters write them so that real exports fit. */
export const TENSORS = {
  encoder: { inputs: ['input_ids', 'attention_mask'], outputs: ['chunk_embeddings'] },
  adapter: { inputs: ['chunk_embeddings'], outputs: ['soft_tokens'] },
  decoder: {
    inputs: (layers: number) => ['inputs_embeds', 'attention_mask', 'position_ids', ...kvNames('past_key_values', layers)],
    outputs: (layers: number) => ['logits', ...kvNames('present', layers)],
  },
} as const;

export function kvNames(prefix: 'past_key_values' | 'present', layers: number): string[] {
  const names: string[] = [];
  for (let i = 0; i < layers; i++) names.push(`${prefix}.${i}.key`, `${prefix}.${i}.value`);
  return names;
}
