import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { AppError, type ErrorCode } from '@lib/shared';
import type { DocumentKind } from './document-kind.js';
import { extractText, type ExtractLimits } from './extract.js';

// The compiled worker, found from src/ or dist/ alike (both sit one level below the package).
const WORKER = fileURLToPath(new URL('../dist/extract-worker.js', import.meta.url));

/**
 * extractText for untrusted uploads: PDF, DOCX and HTML are parsed in a worker thread with a memory cap, and the
 * thread is terminated at the time limit. pdf.js and the HTML parser run synchronously, so a timer in the same
 * thread could not stop a pathological file; here the API's event loop is never blocked by one. Plain text needs
 * no parser and is decoded in place.
 */
export async function extractTextIsolated(bytes: Uint8Array, kind: DocumentKind, limits: ExtractLimits & { maxMemoryMb?: number }): Promise<string> {
  if (kind === 'txt' || kind === 'md') return extractText(bytes, kind, limits);
  if (!existsSync(WORKER)) throw new AppError('INTERNAL', `extraction worker ${WORKER} is missing: run the build (this is a bug in packaging)`);
  const { maxMemoryMb = 512, ...inner } = limits;
  const worker = new Worker(WORKER, {
    workerData: { bytes, kind, limits: inner },
    resourceLimits: { maxOldGenerationSizeMb: maxMemoryMb, maxYoungGenerationSizeMb: 64 },
  });
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new AppError('DOCUMENT_UNREADABLE', `text extraction took longer than ${limits.timeoutMs} ms`)), limits.timeoutMs);
      worker.once('message', (m: { ok: true; text: string } | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown> }) => {
        clearTimeout(timer);
        if (m.ok) resolve(m.text);
        else reject(new AppError(m.code, m.message, m.details));
      });
      worker.once('error', (err) => {
        clearTimeout(timer);
        // Out of memory inside the worker: the file is too complex to extract within the limit.
        reject(new AppError('DOCUMENT_UNREADABLE', `text extraction failed: ${err.message}`));
      });
      worker.once('exit', (code) => {
        clearTimeout(timer);
        reject(new AppError('DOCUMENT_UNREADABLE', `text extraction stopped (exit ${code})`));
      });
    });
  } finally {
    await worker.terminate();
  }
}
