import { z } from 'zod';

/**
 * What a job asks of a document, shared by the CLI, the API and the workers. The limits that depend on config
 * (question length, the largest maxNewTokens) are checked where the config is known.
 */
export const Task = z.discriminatedUnion('type', [
  z.object({ type: z.literal('qa'), /** The question about the document. */ question: z.string().min(1) }).strict(),
  z.object({ type: z.literal('summarize') }).strict(),
  z.object({ type: z.literal('reconstruct') }).strict(),
  z.object({ type: z.literal('instruct'), /** A free instruction over the document. */ instruction: z.string().min(1) }).strict(),
]);
export type Task = z.infer<typeof Task>;

export const GENERATION_DEFAULTS = { maxNewTokens: 128, minNewTokens: 0, temperature: 0, topP: 1, topK: 0, seed: 0, stop: [] as string[] };

export const GenerationParams = z.object({
  /** The most tokens to generate. */
  maxNewTokens: z.number().int().min(1).default(GENERATION_DEFAULTS.maxNewTokens),
  /** End-of-sequence is suppressed until this many tokens are generated (as min_new_tokens in Hugging Face). */
  minNewTokens: z.number().int().min(0).default(GENERATION_DEFAULTS.minNewTokens),
  /** 0 decodes greedily; above 0 samples from the tempered distribution. */
  temperature: z.number().min(0).max(5).default(GENERATION_DEFAULTS.temperature),
  /** Nucleus sampling: keep the smallest set of tokens whose probability reaches topP. */
  topP: z.number().gt(0).max(1).default(GENERATION_DEFAULTS.topP),
  /** Keep only the topK most likely tokens (0: all). */
  topK: z.number().int().min(0).default(GENERATION_DEFAULTS.topK),
  /** Seed of the sampler, so a sampled answer can be reproduced. */
  seed: z.number().int().min(0).max(2 ** 32 - 1).default(GENERATION_DEFAULTS.seed),
  /** Generation stops before the first of these strings. */
  stop: z.array(z.string().min(1).max(64)).max(8).default(GENERATION_DEFAULTS.stop),
});
export type GenerationParams = z.output<typeof GenerationParams>;

export type FinishReason = 'eos' | 'stop' | 'length';

export interface Usage {
  chars: number;
  chunks: number;
  /** Encoder tokens over all chunks, special tokens included. */
  encoderTokens: number;
  /** One per chunk. */
  softTokens: number;
  /** Tokens of the prompt text around the soft tokens (BOS included). */
  promptTokens: number;
  generatedTokens: number;
}

export interface Timings {
  chunkMs: number;
  encodeMs: number;
  adapterMs: number;
  prefillMs: number;
  decodeMs: number;
  totalMs: number;
}
