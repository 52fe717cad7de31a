import { createHash } from 'node:crypto';
import { workerData } from 'piscina';
import { AppError, countCodePoints, runInBackground, toAppError, validateDocumentText, type ErrorCode } from '@lib/shared';
import { parseJsonBody } from './request-body.js';

/** JsonBodyPool's text limits: the documents' character limit and the most code points any cut could fit. */
const limits = (workerData ?? {}) as { maxTextCodePoints?: number; maxDocumentChars?: number };
const maxTextCodePoints = limits.maxTextCodePoints ?? Infinity;

runInBackground();

export type JsonBodyOutcome = { ok: true; body: Record<string, unknown>; textSha256?: string } | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown> };

/**
 * One large JSON body checked and parsed on a pool thread (json-body-pool.ts): the same function readBody runs
 * inline on small bodies. The error's code travels back as data (an exception crossing threads would lose it).
 */
export default function parse(bytes: Uint8Array): JsonBodyOutcome {
  try {
    const body = parseJsonBody(bytes);
    let textSha256: string | undefined;
    // A text no cut could fit in the window is refused here: millions of characters need not cross back to the event
    // loop only to be refused there (the API checks the same bound, and the exact one in tokens, for every text).
    if (typeof body.text === 'string') {
      // The document checks first, as the API makes them (the same function), so a text over both limits gets the
      // same answer either way.
      if (limits.maxDocumentChars !== undefined) validateDocumentText(body.text, limits.maxDocumentChars);
      const codePoints = countCodePoints(body.text);
      if (codePoints > maxTextCodePoints) {
        throw new AppError('CONTEXT_TOO_LONG', `the document has ${codePoints} code points; no cut of it fits the decoder window (at most ${maxTextCodePoints})`, { codePoints, limit: maxTextCodePoints });
      }
      // The text's digest (the API's cut cache and idempotency key it by), hashed here rather than on the event loop:
      // tens of milliseconds for millions of characters.
      textSha256 = createHash('sha256').update(body.text).digest('hex');
    }
    return { ok: true, body, ...(textSha256 === undefined ? {} : { textSha256 }) };
  } catch (err) {
    const e = toAppError(err);
    return { ok: false, code: e.code, message: e.message, details: e.details };
  }
}
