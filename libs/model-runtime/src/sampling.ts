import type { GenerationParams } from '@lib/shared';

/** A small seeded PRNG (mulberry32): the same seed gives the same sampled answer on every machine. */
export function createRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/**
 * Picks the next token: greedy at temperature 0; otherwise softmax(logits / temperature), restricted to the topK
 * most likely tokens and then to the smallest set whose probability reaches topP, sampled with rng.
 */
export function pickToken(
  logits: ArrayLike<number>,
  params: Pick<GenerationParams, 'temperature' | 'topK' | 'topP'>,
  rng: () => number,
): number {
  if (params.temperature <= 0) return argmax(logits);
  const n = logits.length;
  let candidates: number[];
  if (params.topK > 0 || params.topP < 1) {
    candidates = Array.from({ length: n }, (_, i) => i).sort((a, b) => logits[b]! - logits[a]! || a - b);
    if (params.topK > 0) candidates = candidates.slice(0, params.topK);
  } else {
    candidates = Array.from({ length: n }, (_, i) => i);
  }
  const max = Math.max(...candidates.map((i) => logits[i]!));
  let probs = candidates.map((i) => Math.exp((logits[i]! - max) / params.temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (params.topP < 1) {
    // candidates are sorted by probability here, so the nucleus is a prefix.
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < params.topP * total) cumulative += probs[keep++]!;
    candidates = candidates.slice(0, keep);
    probs = probs.slice(0, keep);
    total = cumulative;
  }
  let r = rng() * total;
  for (let k = 0; k < candidates.length; k++) {
    r -= probs[k]!;
    if (r <= 0) return candidates[k]!;
  }
  return candidates.at(-1)!;
}
