import { AppError } from './errors.js';
import type { ChunkRef } from './jobs/pipeline.jobs.js';

/**
 * What one more encoder batch costs, in padded tokens, when planning batches. A batch of one chunk cost about 1 ms more
 * than its share of a large batch (docs/benchmarks.md, section 2), some 25 tokens at this encoder's speed; 128 keeps
 * batches from getting small for a token or two of padding.
 */
export const ENCODER_BATCH_COST_TOKENS = 128;

export interface PaddedBatchLimits {
  /** The most padded tokens in one batch (batch size x its longest chunk), as ENCODER_MAX_BATCH_TOKENS. */
  maxBatchTokens: number;
  /** The most chunks in one batch, as ENCODER_MAX_BATCH_SIZE. */
  maxBatchSize: number;
  /** What one more batch costs, in padded tokens: the fixed cost of one encoder run. */
  batchCostTokens: number;
}

/**
 * Encoder batches (chunk indices) that compute the fewest padded tokens, plus `batchCostTokens` a batch, within the
 * limits: chunks sorted longest first (ties by index), cut into consecutive runs by dynamic programming. The greedy
 * planner fills each batch to its budget, so one long chunk pads a whole batch of short ones; an encode child holds
 * only a part of the document, where that costs most (the 128k bench document: 27% more encoder tokens than planning
 * all chunks together, against 2% with this plan). A chunk longer than the budget goes alone.
 */
export function planPaddedBatches(lengths: readonly number[], limits: PaddedBatchLimits): number[][] {
  const { maxBatchTokens, maxBatchSize, batchCostTokens } = limits;
  if (!(maxBatchSize >= 1 && maxBatchTokens >= 1 && batchCostTokens >= 0)) throw new AppError('INPUT_INVALID', 'batch limits must be positive');
  const order = lengths.map((_, i) => i).sort((a, b) => lengths[b]! - lengths[a]! || a - b);
  const n = order.length;
  // cost[j]: the cheapest plan of the first j chunks (longest first); from[j]: where its last batch starts.
  const cost = new Float64Array(n + 1).fill(Infinity);
  const from = new Int32Array(n + 1);
  cost[0] = 0;
  for (let j = 1; j <= n; j++) {
    for (let i = j - 1; i >= 0 && j - i <= maxBatchSize; i--) {
      // order[i] is the longest of order[i..j): it sets the batch's width.
      const padded = (j - i) * lengths[order[i]!]!;
      if (padded > maxBatchTokens && j - i > 1) break;
      const c = cost[i]! + padded + batchCostTokens;
      if (c < cost[j]!) {
        cost[j] = c;
        from[j] = i;
      }
    }
  }
  const batches: number[][] = [];
  for (let j = n; j > 0; j = from[j]!) batches.push(order.slice(from[j]!, j));
  return batches.reverse();
}

export interface EncodeChildLimits {
  /** The most chunks one child carries (ENCODE_JOB_MAX_CHUNKS). */
  maxChunks: number;
  /** The most encoder tokens one child carries. */
  maxTokens: number;
}

/**
 * The API's encode children: chunks of similar length together (most tokens first), so the encoder's padded batches
 * waste little; the decoder puts the soft prompts back in document order by chunk index.
 */
export function groupEncodeChildren(chunks: readonly { index: number; start: number; end: number; tokens: number }[], limits: EncodeChildLimits): ChunkRef[][] {
  const bySize = [...chunks].sort((a, b) => b.tokens - a.tokens || a.index - b.index);
  const children: ChunkRef[][] = [];
  let child: ChunkRef[] = [];
  let tokens = 0;
  for (const c of bySize) {
    if (child.length > 0 && (child.length >= limits.maxChunks || tokens + c.tokens > limits.maxTokens)) {
      children.push(child);
      child = [];
      tokens = 0;
    }
    child.push({ i: c.index, start: c.start, end: c.end, tokens: c.tokens });
    tokens += c.tokens;
  }
  if (child.length > 0) children.push(child);
  return children;
}
