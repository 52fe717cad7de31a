import { generateSample, maxAmount, minAmount, vtExampleText, type GenerateOptions, type RulerSample } from './generators.js';
import { Rng } from './rng.js';
import type { RulerTask, VtConfig } from './ruler-tasks.js';

/** Counts tokens with the tokenizer of the model under test (the decoder's, for E2LLM). */
export type CountTokens = (text: string) => number;

export interface Fitted {
  amount: number;
  tokens: number;
}

/**
 * The largest amount of haystack whose text stays within budget tokens: a bracket found from a linear estimate,
 * then a binary search. build(amount) must be deterministic; its token count must grow with amount (it does
 * for every task, up to a token or two of noise, which the per-sample check in generateFitted absorbs).
 * Returns min when even min does not fit (the caller sees tokens > budget).
 */
export function fitAmount(build: (amount: number) => string, count: CountTokens, budget: number, min: number, max = Number.POSITIVE_INFINITY): Fitted {
  const tokensAt = new Map<number, number>();
  const t = (a: number) => {
    let v = tokensAt.get(a);
    if (v === undefined) {
      v = count(build(a));
      tokensAt.set(a, v);
    }
    return v;
  };
  let lo = min;
  if (t(lo) > budget) return { amount: lo, tokens: t(lo) };
  // A probe at twice min gives the tokens per unit; the first guess lands near the budget.
  let hi = Math.min(max, Math.max(lo + 1, lo * 2));
  if (hi === lo) return { amount: lo, tokens: t(lo) };
  const perUnit = Math.max(1e-6, (t(hi) - t(lo)) / (hi - lo));
  if (t(hi) <= budget) {
    lo = hi;
    for (;;) {
      // Aim 2% past the linear estimate so the first miss brackets the answer.
      // At most 4x per step, so a flat start (tokens that barely move at small amounts) cannot jump to absurd sizes.
      const estimate = Math.floor(lo + ((budget - t(lo)) / perUnit) * 1.02) + 1;
      const guess = Math.min(max, lo * 4, Math.max(lo + 1, estimate));
      if (t(guess) > budget) {
        hi = guess;
        break;
      }
      lo = guess;
      if (lo >= max) return { amount: lo, tokens: t(lo) };
    }
  }
  // Now t(lo) <= budget < t(hi): binary search.
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (t(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return { amount: lo, tokens: t(lo) };
}

export interface FittedSample extends RulerSample {
  /** Tokens of `input` plus the task's max new tokens: at most the target length. */
  tokens: number;
  /** The target length. */
  length: number;
  index: number;
}

/** The seed of one sample: every (seed, task, length, index) has its own stream. */
export function sampleKey(seed: number, task: string, length: number, index: number | 'fit' | 'example'): string {
  return `${seed}/${task}/${length}/${index}`;
}

/**
 * `samples` samples of a task at a target length (RULER: input tokens + max new tokens <= length), fitted with
 * the given tokenizer. The amount of haystack is fitted once per task and length, then lowered for a sample whose
 * own draws made it longer (RULER does the same).
 */
export function generateFitted(task: RulerTask, length: number, samples: number, seed: number, count: CountTokens, extra: Pick<GenerateOptions, 'depths'> = {}): FittedSample[] {
  const budget = length - task.maxNewTokens;
  const opts: GenerateOptions = { length, ...extra };
  if (task.config.kind === 'vt') {
    // RULER fits the vt one-shot example to 500 tokens (with 30 to generate).
    const c: VtConfig = task.config;
    opts.vtExampleNoises = fitAmount((n) => vtExampleText(c, n, new Rng(sampleKey(seed, task.name, length, 'example'))), count, 500 - task.maxNewTokens, 1).amount;
  }
  const fitted = fitAmount(
    (a) => generateSample(task, a, new Rng(sampleKey(seed, task.name, length, 'fit')), opts).input,
    count,
    budget,
    minAmount(task),
    maxAmount(task),
  );
  const out: FittedSample[] = [];
  for (let index = 0; index < samples; index++) {
    let amount = fitted.amount;
    for (;;) {
      const s = generateSample(task, amount, new Rng(sampleKey(seed, task.name, length, index)), opts);
      const tokens = count(s.input) + task.maxNewTokens;
      if (tokens <= length || amount <= minAmount(task)) {
        out.push({ ...s, tokens, length, index });
        break;
      }
      amount = Math.max(minAmount(task), amount - Math.max(1, Math.ceil(amount * 0.005)));
    }
  }
  return out;
}
