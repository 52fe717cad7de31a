/**
 * RULER's scorers (scripts/eval/synthetic/constants.py and evaluate.py): a prediction is cleaned of control
 * characters, then each reference is looked for as a case-insensitive substring. The per-sample scores are
 * averaged and reported on a 0-100 scale, rounded to 2 decimals.
 */
export type Metric = 'string_match_all' | 'string_match_part';

/** RULER's postprocess_pred: strip, turn control characters into line breaks, strip again. */
export function postprocessPrediction(pred: string): string {
  // eslint-disable-next-line no-control-regex
  return pred.trim().replace(/[\x00-\x1f]/g, '\n').trim();
}

/** The share of the references found in the prediction (0-1). */
export function stringMatchAllOne(pred: string, refs: readonly string[]): number {
  if (refs.length === 0) throw new Error('a sample without references (this is a bug)');
  const p = pred.toLowerCase();
  return refs.filter((r) => p.includes(r.toLowerCase())).length / refs.length;
}

/** 1 when any reference is found in the prediction, else 0. */
export function stringMatchPartOne(pred: string, refs: readonly string[]): number {
  if (refs.length === 0) throw new Error('a sample without references (this is a bug)');
  const p = pred.toLowerCase();
  return refs.some((r) => p.includes(r.toLowerCase())) ? 1 : 0;
}

/** The score of a set of predictions on RULER's 0-100 scale (rounded to 2 decimals, as RULER reports it). */
export function scoreRuler(metric: Metric, preds: readonly string[], refs: readonly (readonly string[])[]): number {
  if (preds.length !== refs.length) throw new Error(`${preds.length} predictions for ${refs.length} references (this is a bug)`);
  if (preds.length === 0) throw new Error('nothing to score (this is a bug)');
  const one = metric === 'string_match_all' ? stringMatchAllOne : stringMatchPartOne;
  const mean = preds.reduce((acc, p, i) => acc + one(postprocessPrediction(p), refs[i]!), 0) / preds.length;
  return Math.round(mean * 100 * 100) / 100;
}
