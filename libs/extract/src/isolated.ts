import { existsSync } from 'node:fs';
import { Piscina } from 'piscina';
import { AppError } from '@lib/shared';
import type { DocumentKind } from './document-kind.js';
import { extractText, type ExtractLimits } from './extract.js';
import type { ExtractOutcome, ExtractTask } from './extract-task.js';

// The compiled task, found from src/ or dist/ alike (both sit one level below the package).
const TASK = new URL('../dist/extract-task.js', import.meta.url);

export interface ExtractionPoolOptions {
  /** Extractions that run at once, each on a thread of its own. */
  threads: number;
  /** Heap cap of one thread: the pool holds at most threads x this much parser memory. */
  memoryMb: number;
  /** Uploads that may wait for a thread; past that the caller is told to come back (429 OVERLOADED). */
  maxQueue: number;
}

/**
 * extractText for untrusted uploads. PDF, DOCX and HTML are parsed on a fixed set of worker threads (piscina), each
 * with a heap cap, and a thread is torn down at the time limit: pdf.js and the HTML parser run synchronously, so a
 * timer in the same thread could not stop a pathological file, and the API's event loop is never blocked by one.
 * The fixed set bounds the parsers' memory as a whole (threads x memoryMb), whatever number of uploads arrive at
 * once; a full queue is refused with Retry-After instead of piling up. Plain text needs no parser and is decoded in
 * place.
 */
export class ExtractionPool {
  private readonly pool: Piscina<ExtractTask, ExtractOutcome>;

  constructor(readonly options: ExtractionPoolOptions) {
    if (!existsSync(TASK)) throw new AppError('INTERNAL', `extraction task ${TASK.pathname} is missing: run the build (this is a bug in packaging)`);
    this.pool = new Piscina({
      filename: TASK.href,
      minThreads: 0,
      maxThreads: options.threads,
      maxQueue: options.maxQueue,
      // A parser's leftovers are not kept between uploads: an idle thread goes, its heap with it.
      idleTimeout: 10_000,
      resourceLimits: { maxOldGenerationSizeMb: options.memoryMb, maxYoungGenerationSizeMb: Math.min(64, Math.max(8, options.memoryMb / 8)) },
    });
  }

  async extract(bytes: Uint8Array, kind: DocumentKind, limits: ExtractLimits): Promise<string> {
    if (kind === 'txt' || kind === 'md') return extractText(bytes, kind, limits);
    if (this.pool.queueSize >= this.options.maxQueue) {
      throw new AppError('OVERLOADED', `all ${this.options.threads} document extractors are busy and ${this.options.maxQueue} uploads wait; retry later`, { retryAfterSeconds: 2 });
    }
    // The timer starts when the upload is queued: time waiting counts against its limit too.
    const signal = AbortSignal.timeout(limits.timeoutMs);
    let out: ExtractOutcome;
    try {
      out = await this.pool.run({ bytes, kind, limits }, { signal });
    } catch (err) {
      if (signal.aborted) throw new AppError('DOCUMENT_UNREADABLE', `text extraction took longer than ${limits.timeoutMs} ms`);
      // Out of memory inside the thread (the file is too complex to extract within the cap), or the thread died.
      throw new AppError('DOCUMENT_UNREADABLE', `text extraction failed: ${(err as Error).message}`);
    }
    if (!out.ok) throw new AppError(out.code, out.message, out.details);
    return out.text;
  }

  async close(): Promise<void> {
    await this.pool.close({ force: true });
  }
}
