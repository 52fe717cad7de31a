import { AppError } from '@lib/shared';
import { generateFitted, type CountTokens, type FittedSample } from './fit.js';
import type { RulerSample } from './generators.js';
import { RULER_TASKS, type RulerTaskName } from './ruler-tasks.js';
import { scoreRuler } from './scoring.js';

/** A runner's answer: the text, and where it can tell, the chunk each evidence scorer ranked first. */
export interface EvalAnswer {
  text: string;
  /** By scorer name: the text of the chunk it ranked first (null: it ranked none). */
  topChunks?: Record<string, string | null>;
}

/** A system under test: answers one sample's question about its document. */
export interface EvalRunner {
  /**
   * The generated answer. Throws AppError CONTEXT_TOO_LONG when the input does not fit the model's window: the
   * harness reports that sample as over the window, never as a wrong answer.
   */
  answer(sample: FittedSample, maxNewTokens: number): Promise<EvalAnswer>;
}

/**
 * Whether a chunk holds what the answer rests on: a NIAH needle whose value is asked for (or, for vt, an assignment
 * of a variable asked for). cwe and fwe have no single chunk to point at.
 */
export function holdsEvidence(sample: RulerSample, chunk: string): boolean {
  if (sample.needles) return sample.needles.some((n) => chunk.includes(n.text) && sample.outputs.some((o) => n.text.includes(o)));
  return sample.outputs.some((o) => chunk.includes(`VAR ${o} =`));
}

export interface RulerResult {
  task: RulerTaskName;
  /** The target length in tokens (input + max new tokens, with the decoder's tokenizer). */
  length: number;
  /** Samples generated. */
  samples: number;
  /** RULER's 0-100 score over the samples that fit the window; null when none did. */
  score: number | null;
  /** True when every sample was over the model's window (score is null then). */
  overWindow?: true;
  /** How many samples were over the window, when some but not all were. */
  overWindowSamples?: number;
  /** Mean tokens of the samples (input + max new tokens). */
  meanTokens: number;
  /** Wall time of the answers, in seconds. */
  seconds: number;
  /**
   * Evidence precision@1 by scorer, in percent: how often the chunk it ranked first holds the needle (over the
   * samples that fitted the window; NIAH and vt only).
   */
  evidencePrecisionAt1?: Record<string, number>;
}

export interface RunRulerOptions {
  tasks: readonly RulerTaskName[];
  lengths: readonly number[];
  samples: number;
  seed: number;
  countTokens: CountTokens;
  /** The systems to run on the same samples, by name (e.g. {e2llm, "full-context"}). */
  runners: Record<string, EvalRunner>;
  /** Called after each sample, for progress output. */
  onSample?: (e: { runner: string; task: RulerTaskName; length: number; index: number; prediction: string | null; outputs: string[]; tokens: number }) => void;
}

/** Generates each task at each length once, runs every runner on the same samples and scores them. */
export async function runRuler(opts: RunRulerOptions): Promise<Record<string, RulerResult[]>> {
  const out: Record<string, RulerResult[]> = Object.fromEntries(Object.keys(opts.runners).map((k) => [k, []]));
  for (const length of opts.lengths) {
    for (const name of opts.tasks) {
      const task = RULER_TASKS[name];
      const samples = generateFitted(task, length, opts.samples, opts.seed, opts.countTokens);
      const meanTokens = Math.round(samples.reduce((a, s) => a + s.tokens, 0) / samples.length);
      for (const [runnerName, runner] of Object.entries(opts.runners)) {
        const t0 = performance.now();
        const preds: string[] = [];
        const refs: string[][] = [];
        const hits: Record<string, number> = {};
        let over = 0;
        for (const s of samples) {
          let prediction: string | null = null;
          try {
            const a = await runner.answer(s, task.maxNewTokens);
            prediction = a.text;
            preds.push(prediction);
            refs.push(s.outputs);
            if (task.config.kind === 'niah' || task.config.kind === 'vt') {
              for (const [scorer, top] of Object.entries(a.topChunks ?? {})) hits[scorer] = (hits[scorer] ?? 0) + (top !== null && holdsEvidence(s, top) ? 1 : 0);
            }
          } catch (err) {
            if (!(err instanceof AppError && err.code === 'CONTEXT_TOO_LONG')) throw err;
            over++;
          }
          opts.onSample?.({ runner: runnerName, task: name, length, index: s.index, prediction, outputs: s.outputs, tokens: s.tokens });
        }
        const result: RulerResult = {
          task: name,
          length,
          samples: samples.length,
          score: preds.length > 0 ? scoreRuler(task.metric, preds, refs) : null,
          meanTokens,
          seconds: Math.round((performance.now() - t0) / 10) / 100,
        };
        if (Object.keys(hits).length > 0 && preds.length > 0) {
          result.evidencePrecisionAt1 = Object.fromEntries(Object.entries(hits).map(([k, h]) => [k, Math.round((1000 * h) / preds.length) / 10]));
        }
        if (over === samples.length) result.overWindow = true;
        else if (over > 0) result.overWindowSamples = over;
        out[runnerName]!.push(result);
      }
    }
  }
  return out;
}
