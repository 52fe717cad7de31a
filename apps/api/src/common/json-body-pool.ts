import { Piscina } from 'piscina';
import { AppError } from '@lib/shared';
import type { JsonBodyOutcome } from './json-body-task.js';
import { parseJsonBody } from './request-body.js';

/** Below this many bytes a body is parsed in place: a thread hop costs more than the parse (about 1 ms per 64 KiB). */
const INLINE_BYTES = 256 * 1024;

/**
 * Where readBody parses JSON: small bodies in place, large ones (a document of millions of characters is 12 MB of
 * JSON: decoding, scanning and parsing it took about 250 ms) on worker threads, so no request holds the event loop
 * that answers every other request and /healthz. The parsed body comes back by structured clone (a few ms for
 * millions of characters). A full queue is 429 OVERLOADED with Retry-After.
 */
export class JsonBodyPool {
  private readonly pool: Piscina<Uint8Array, JsonBodyOutcome>;

  /**
   * maxTextCodePoints: a `text` field longer than this (the window's chunks times the chunk size) is refused on the
   * thread with 422 CONTEXT_TOO_LONG, without its text crossing back to the event loop.
   */
  constructor(private readonly options: { threads: number; maxQueue: number; maxTextCodePoints?: number; maxDocumentChars?: number }) {
    this.pool = new Piscina({
      // The built task, from the sources too (tests run them): each is one folder below apps/api.
      filename: new URL('../../dist/common/json-body-task.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: options.threads,
      maxQueue: options.maxQueue,
      idleTimeout: 30_000,
      workerData: { maxTextCodePoints: options.maxTextCodePoints, maxDocumentChars: options.maxDocumentChars },
    });
  }

  /** The body's fields, and the sha256 of its `text` when a thread parsed it (hashed there, off the event loop). */
  async parse(bytes: Buffer): Promise<{ fields: Record<string, unknown>; textSha256?: string }> {
    if (bytes.length < INLINE_BYTES) return { fields: parseJsonBody(bytes) };
    if (this.pool.queueSize >= this.options.maxQueue) {
      throw new AppError('OVERLOADED', 'every JSON body parser is busy; retry later', { retryAfterSeconds: 2 });
    }
    // A buffer that owns its memory moves to the thread; a view into shared memory is copied.
    const owned = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength;
    const out = await this.pool.run(bytes, owned ? { transferList: [bytes.buffer as ArrayBuffer] } : {});
    if (!out.ok) throw new AppError(out.code, out.message, out.details);
    return { fields: out.body, ...(out.textSha256 === undefined ? {} : { textSha256: out.textSha256 }) };
  }

  async close(): Promise<void> {
    await this.pool.close({ force: true });
  }
}
