import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '@lib/shared';
import { DEFAULT_CONTENT_TYPE, assertValidKey, assertValidPrefix, toBuffer, type BlobStore, type PutOptions } from '../blob-store.js';

export type BlobOperation = 'put' | 'get' | 'exists' | 'delete' | 'list' | 'ping';

export interface MemoryBlobStoreOptions {
  /** Milliseconds every operation waits before acting, so a test can see how many run at once. Default 0. */
  delayMs?: number;
}

/**
 * A blob store in a Map, for unit tests of other packages. Same key rules and error codes as the real drivers,
 * plus knobs to simulate an unreachable store (`down`, `failNext`) and counters to check what the code under test
 * did (`calls`, `maxInFlight`). Stored and returned buffers are copies, so a caller cannot change a stored blob.
 */
export class MemoryBlobStore implements BlobStore {
  /** While true, every operation (ping included) throws STORAGE_UNAVAILABLE. */
  down = false;
  /** See MemoryBlobStoreOptions.delayMs. */
  delayMs: number;
  /** Every call in order, failed ones included. */
  readonly calls: { op: BlobOperation; key?: string }[] = [];
  /** Operations running now, and the most that ever ran at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Set by close(). */
  closed = false;

  private readonly blobs = new Map<string, { body: Buffer; contentType: string; durable: boolean }>();
  private failRule: { remaining: number; ops?: ReadonlySet<BlobOperation> } | undefined;

  constructor(options: MemoryBlobStoreOptions = {}) {
    this.delayMs = options.delayMs ?? 0;
  }

  /**
   * The next `n` operations (only those in `ops`, when given) throw STORAGE_UNAVAILABLE without acting; later ones
   * succeed again. Replaces an earlier failNext that has not run out.
   */
  failNext(n = 1, ops?: readonly BlobOperation[]): this {
    this.failRule = n > 0 ? { remaining: n, ...(ops ? { ops: new Set(ops) } : {}) } : undefined;
    return this;
  }

  async put(key: string, body: Uint8Array | string, contentType = DEFAULT_CONTENT_TYPE, options: PutOptions = {}): Promise<void> {
    // Copied before the first await: the blob is what the caller passed at call time, as with a real store.
    const copy = Buffer.from(toBuffer(body));
    await this.run('put', key, () => {
      this.blobs.set(key, { body: copy, contentType, durable: options.durable !== false });
    });
  }

  async get(key: string): Promise<Buffer> {
    return this.run('get', key, () => {
      const blob = this.blobs.get(key);
      if (!blob) throw new AppError('NOT_FOUND', `blob not found: ${key}`, { key });
      return Buffer.from(blob.body);
    });
  }

  async exists(key: string): Promise<boolean> {
    return this.run('exists', key, () => this.blobs.has(key));
  }

  async delete(key: string): Promise<void> {
    await this.run('delete', key, () => {
      this.blobs.delete(key);
    });
  }

  async list(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix);
    return this.run('list', undefined, () => this.keys().filter((k) => k.startsWith(prefix)));
  }

  async ping(): Promise<void> {
    await this.run('ping', undefined, () => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Stored keys, sorted. */
  keys(): string[] {
    return [...this.blobs.keys()].sort();
  }

  /** The content type a blob was stored with, or undefined when missing. */
  contentType(key: string): string | undefined {
    return this.blobs.get(key)?.contentType;
  }

  /** Whether a blob was stored durable (PutOptions.durable), or undefined when missing. */
  durable(key: string): boolean | undefined {
    return this.blobs.get(key)?.durable;
  }

  /** Removes every blob and resets `calls`, `maxInFlight` and the failure knobs. */
  clear(): void {
    this.blobs.clear();
    this.calls.length = 0;
    this.maxInFlight = this.inFlight;
    this.down = false;
    this.failRule = undefined;
  }

  private async run<R>(op: BlobOperation, key: string | undefined, act: () => R): Promise<R> {
    this.calls.push(key === undefined ? { op } : { op, key });
    if (key !== undefined) assertValidKey(key);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs > 0) await sleep(this.delayMs);
      if (this.down) throw unavailable(op, key, 'store is down');
      const rule = this.failRule;
      if (rule && (!rule.ops || rule.ops.has(op))) {
        if (--rule.remaining <= 0) this.failRule = undefined;
        throw unavailable(op, key, 'injected failure');
      }
      return act();
    } finally {
      this.inFlight--;
    }
  }
}

function unavailable(op: BlobOperation, key: string | undefined, why: string): AppError {
  return new AppError('STORAGE_UNAVAILABLE', `memory blob store ${op}${key === undefined ? '' : ` ${key}`}: ${why}`, {
    driver: 'memory',
    operation: op,
    ...(key === undefined ? {} : { key }),
  });
}
