import { AppError, runInBackground, type Task } from '@lib/shared';
import { DocumentPlanner } from './planner.js';
import type { PlanRequest, PlanResponse } from './planning-pool.js';

/**
 * A planning thread (piscina): cuts documents and counts prompt tokens off the API's event loop. The planner is
 * loaded once per thread from the package folder the pool was opened with.
 */
runInBackground();

let planner: Promise<DocumentPlanner> | undefined;

export default async function plan(req: PlanRequest): Promise<PlanResponse> {
  try {
    planner ??= DocumentPlanner.load(req.modelDir);
    const p = await planner;
    const promptTokens = req.task ? promptLength(p, req.task) : 0;
    if (req.text === undefined) return { ok: true, chunks: [], promptTokens, tokenizer: p.tokenizerId };
    const cut = p.chunk(req.text, req.limit);
    const chunks = cut.map((c) => [c.start, c.end, c.ids.length] as [number, number, number]);
    // Every chunk's ids, one after another: the API stores them for the encoder workers (chunk-ids.ts).
    const ids = new Uint32Array(cut.reduce((a, c) => a + c.ids.length, 0));
    let at = 0;
    for (const c of cut) {
      ids.set(c.ids, at);
      at += c.ids.length;
    }
    return { ok: true, chunks, promptTokens, tokenizer: p.tokenizerId, ids };
  } catch (err) {
    // AppError's code does not survive a thread boundary as an exception: it travels as data and is rethrown.
    if (err instanceof AppError) return { ok: false, error: { code: err.code, message: err.message, details: err.details } };
    throw err;
  }
}

function promptLength(p: DocumentPlanner, task: Task): number {
  const { prefixIds, suffixIds } = p.promptIds(task);
  return prefixIds.length + suffixIds.length;
}
