import { LRUCache } from 'lru-cache';

/**
 * A map that forgets its least recently used entries past a total size in bytes (0: keeps nothing): a thin
 * adapter over lru-cache's maxSize, which refuses a size of 0 (so 0 means no cache here) and an entry of 0 bytes
 * (counted as 1). An entry larger than the whole is not kept, and drops an older value under its key.
 */
export class ByteLru<V extends {}> {
  private readonly cache: LRUCache<string, V> | undefined;

  constructor(readonly maxBytes: number) {
    this.cache = maxBytes > 0 ? new LRUCache<string, V>({ maxSize: maxBytes }) : undefined;
  }

  get size(): number {
    return this.cache?.size ?? 0;
  }

  get(key: string): V | undefined {
    return this.cache?.get(key);
  }

  set(key: string, value: V, bytes: number): void {
    this.cache?.set(key, value, { size: Math.max(1, Math.ceil(bytes)) });
  }
}
