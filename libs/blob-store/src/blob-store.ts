import { AppError } from '@lib/shared';

/**
 * Where sources, soft prompts and results live. Every driver behaves the same on the points callers rely on:
 * a missing blob is NOT_FOUND (never STORAGE_UNAVAILABLE), an unreachable store is STORAGE_UNAVAILABLE (retryable,
 * never NOT_FOUND), and keys follow the same rules everywhere (see `assertValidKey`), so code tested against the
 * memory or local driver behaves the same on S3.
 */
export interface BlobStore {
  /** Writes atomically (a reader never sees a half-written blob). */
  put(key: string, body: Uint8Array | string, contentType?: string, options?: PutOptions): Promise<void>;
  /** Throws AppError('NOT_FOUND') when missing. */
  get(key: string): Promise<Buffer>;
  exists(key: string): Promise<boolean>;
  /** Idempotent: deleting a missing blob succeeds. */
  delete(key: string): Promise<void>;
  /**
   * Every key that starts with `prefix`, sorted. For what the service must find without a record naming each blob (a
   * tenant's soft prompts, when its data is purged) and for tests that compare the store before and after; never on
   * a request's hot path. `prefix` is '' or a valid key, optionally ending in '/'.
   */
  list(prefix: string): Promise<string[]>;
  /** Readiness probe: throws AppError('STORAGE_UNAVAILABLE') when the store cannot be reached. */
  ping(): Promise<void>;
  close?(): Promise<void>;
}

export interface PutOptions {
  /**
   * false: the blob is a cache entry that can be computed again (a soft prompt), so the driver may skip making it
   * durable before returning (the local driver skips its fsync). Writes stay atomic for readers either way; after a
   * crash such a blob may be missing or fail its checks, which its reader must then handle. Default true.
   */
  durable?: boolean;
}

/** Content type stored when the caller gives none. */
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

/** Longest key accepted: S3's limit on an object key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;

/**
 * Throws INPUT_INVALID unless `key` is a relative, '/'-separated path with no empty, '.' or '..' segment, no '..'
 * anywhere, and no backslash or NUL. The local driver maps keys to files, so these rules are what keeps a key inside
 * its root; the other drivers apply them too so that a key accepted in a unit test is accepted in production.
 */
export function assertValidKey(key: string): void {
  const refuse = (why: string): never => {
    throw new AppError('INPUT_INVALID', `invalid blob key: ${why}`, { key: String(key).slice(0, 200) });
  };
  if (typeof key !== 'string' || key.length === 0) refuse('empty');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) refuse(`longer than ${MAX_KEY_BYTES} bytes`);
  if (key.includes('\0')) refuse('contains NUL');
  if (key.includes('\\')) refuse('contains a backslash');
  if (key.startsWith('/')) refuse('absolute');
  if (key.includes('..')) refuse("contains '..'");
  for (const segment of key.split('/')) {
    if (segment === '') refuse('empty path segment');
    if (segment === '.') refuse("'.' path segment");
  }
}

/** Throws INPUT_INVALID unless `prefix` is '' or a valid key with or without a trailing '/'. */
export function assertValidPrefix(prefix: string): void {
  if (prefix === '') return;
  assertValidKey(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
}

/** The bytes of a body; strings are encoded as UTF-8. Returns a view, not a copy, when given a Uint8Array. */
export function toBuffer(body: Uint8Array | string): Buffer {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
}
