import { parentPort, workerData } from 'node:worker_threads';
import { toAppError } from '@lib/shared';
import { extractText, type ExtractLimits } from './extract.js';
import type { DocumentKind } from './document-kind.js';

// Runs one extraction in its own thread (see isolated.ts) and posts back the text or the error's code and message.
const { bytes, kind, limits } = workerData as { bytes: Uint8Array; kind: DocumentKind; limits: ExtractLimits };
extractText(bytes, kind, limits).then(
  (text) => parentPort!.postMessage({ ok: true, text }),
  (err: unknown) => {
    const e = toAppError(err);
    parentPort!.postMessage({ ok: false, code: e.code, message: e.message, details: e.details });
  },
);
