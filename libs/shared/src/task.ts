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

/**
 * Selective expansion: the most evidence chunks a job may have read as raw tokens (each takes up to the encoder's
 * chunk limit in decoder positions), and how many by default. The default is the smallest that reaches the
 * goals of docs/evaluation.md (niah_multivalue and niah_multiquery need one chunk per value or key asked for).
 */
export const EXPAND_MAX_CHUNKS = 16;
export const EXPAND_DEFAULT_CHUNKS = 4;
/**
 * A chunk is expanded only when its score is at least this share of the best chunk's: a question about one key
 * expands that key's chunk, not the three other chunks that share its common words (more raw needles of other keys
 * to choose among cost niah_multikey_1 70 points at 8k, docs/evaluation.md), while a question whose answer spans
 * several chunks (all values of a key, several keys) scores them alike and expands them all.
 */
export const EXPAND_DEFAULT_MIN_SCORE_RATIO = 0.5;

export const GENERATION_DEFAULTS = {
  maxNewTokens: 128,
  minNewTokens: 0,
  temperature: 0,
  topP: 1,
  topK: 0,
  seed: 0,
  stop: [] as string[],
  expand: { chunks: EXPAND_DEFAULT_CHUNKS, minScoreRatio: EXPAND_DEFAULT_MIN_SCORE_RATIO },
};

export const ExpandParams = z
  .object({
    /** The best-scored evidence chunks given to the decoder as their own tokens in their place (0: none). */
    chunks: z.number().int().min(0).max(EXPAND_MAX_CHUNKS).default(EXPAND_DEFAULT_CHUNKS),
    /** Expand only chunks scoring at least this share of the best one (0: the top `chunks`, whatever they score). */
    minScoreRatio: z.number().min(0).max(1).default(EXPAND_DEFAULT_MIN_SCORE_RATIO),
  })
  .strict();

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
  /** Selective expansion of the chunks the question points at (see ExpandParams). */
  expand: ExpandParams.default(GENERATION_DEFAULTS.expand),
});
export type GenerationParams = z.output<typeof GenerationParams>;

export type FinishReason = 'eos' | 'stop' | 'length';

/** Why fewer chunks were expanded than asked for. */
export const EXPANSION_LIMITS = ['window', 'no_query', 'no_match', 'score', 'source_missing'] as const;
export type ExpansionLimit = (typeof EXPANSION_LIMITS)[number];

export interface Usage {
  chars: number;
  chunks: number;
  /** Encoder tokens over all chunks, special tokens included. */
  encoderTokens: number;
  /** One per chunk that was not expanded. */
  softTokens: number;
  /** Tokens of the prompt text around the document (BOS included). */
  promptTokens: number;
  generatedTokens: number;
  /** Chunks the job asked to expand (generation.expand.chunks). */
  expansionRequested: number;
  /** Chunks read as raw tokens in their place. */
  expandedChunks: number;
  /** Decoder positions the expanded chunks took (their tokens). */
  expandedTokens: number;
  /**
   * Set when fewer chunks were expanded than asked: `window` (the rest did not fit the decoder window), `no_query`
   * (the task has no question to score chunks against), `no_match` (fewer chunks share a word with the question),
   * `score` (the rest scored under expand.minScoreRatio of the best),
   * `source_missing` (the stored text is gone: answered from the soft tokens alone, with no evidence).
   */
  expansionLimitedBy?: ExpansionLimit;
}

export interface Timings {
  chunkMs: number;
  encodeMs: number;
  adapterMs: number;
  /** Scoring the chunks against the question (evidence and the choice of what to expand). */
  scoringMs: number;
  /** Tokenizing and embedding the expanded chunks; their share of the prefill is in prefillMs. */
  expandMs: number;
  prefillMs: number;
  decodeMs: number;
  totalMs: number;
}

/** The scorers that rank evidence: lexical (BM25 of the question against chunk texts), the decoder's attention. */
export const EVIDENCE_SCORERS = ['bm25', 'attention', 'fusion'] as const;
export type EvidenceScorer = (typeof EVIDENCE_SCORERS)[number];

/** A chunk an answer rests on. */
export const Evidence = z.object({
  chunkIndex: z.number().int().nonnegative(),
  /** UTF-16 offsets of the chunk in the document's extracted text. */
  charStart: z.number().int().nonnegative(),
  charEnd: z.number().int().nonnegative(),
  /** 1-based page of charStart, for documents extracted from PDF. */
  page: z.number().int().positive().optional(),
  /** The ranking scorer's score (higher ranks first; comparable within one answer only). */
  score: z.number(),
  /** Whether the decoder read this chunk as raw tokens. */
  expanded: z.boolean(),
  text: z.string(),
});
export type Evidence = z.infer<typeof Evidence>;
