import { runInBackground, toAppError, type ErrorCode } from '@lib/shared';
import type { DocumentKind } from './document-kind.js';
import { extractText, type ExtractLimits } from './extract.js';

runInBackground();

export interface ExtractTask {
  bytes: Uint8Array;
  kind: DocumentKind;
  limits: ExtractLimits;
}

export type ExtractOutcome = { ok: true; text: string } | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown> };

/**
 * One extraction on a pool thread (see isolated.ts). The error's code travels back as data: an exception crossing
 * the thread boundary would lose it.
 */
export default async function extract(task: ExtractTask): Promise<ExtractOutcome> {
  try {
    return { ok: true, text: await extractText(task.bytes, task.kind, task.limits) };
  } catch (err) {
    const e = toAppError(err);
    return { ok: false, code: e.code, message: e.message, details: e.details };
  }
}
