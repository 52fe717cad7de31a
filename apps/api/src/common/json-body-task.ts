import { runInBackground, toAppError, type ErrorCode } from '@lib/shared';
import { parseJsonBody } from './request-body.js';

runInBackground();

export type JsonBodyOutcome = { ok: true; body: Record<string, unknown> } | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown> };

/**
 * One large JSON body checked and parsed on a pool thread (json-body-pool.ts): the same function readBody runs
 * inline on small bodies. The error's code travels back as data (an exception crossing threads would lose it).
 */
export default function parse(bytes: Uint8Array): JsonBodyOutcome {
  try {
    return { ok: true, body: parseJsonBody(bytes) };
  } catch (err) {
    const e = toAppError(err);
    return { ok: false, code: e.code, message: e.message, details: e.details };
  }
}
