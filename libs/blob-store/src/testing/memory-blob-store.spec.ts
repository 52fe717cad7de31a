import { describe, expect, it } from 'vitest';
import { codeOf } from '../../test/code-of.js';
import { mapLimit } from '../map-limit.js';
import { MemoryBlobStore } from './memory-blob-store.js';


describe('MemoryBlobStore', () => {
  it('round-trips, copies buffers, and deletes idempotently', async () => {
    const store = new MemoryBlobStore();
    const body = Buffer.from([1, 2, 3]);
    await store.put('a/b', body, 'application/x-test');
    body[0] = 9; // the caller changing its buffer later does not change the blob
    const got = await store.get('a/b');
    expect([...got]).toEqual([1, 2, 3]);
    got[1] = 9; // nor does changing what get() returned
    expect([...(await store.get('a/b'))]).toEqual([1, 2, 3]);
    expect(store.contentType('a/b')).toBe('application/x-test');
    await store.put('t', 'héllo');
    expect((await store.get('t')).toString()).toBe('héllo');
    expect(store.contentType('t')).toBe('application/octet-stream');
    expect(store.keys()).toEqual(['a/b', 't']);
    expect(await store.exists('a/b')).toBe(true);
    await store.delete('a/b');
    await store.delete('a/b');
    expect(await store.exists('a/b')).toBe(false);
    expect(await codeOf(store.get('a/b'))).toBe('NOT_FOUND');
    await store.ping();
  });

  it('lists the keys under a prefix, sorted', async () => {
    const store = new MemoryBlobStore();
    for (const k of ['p/b', 'p/a', 'pq/c', 'z']) await store.put(k, 'x');
    expect(await store.list('p/')).toEqual(['p/a', 'p/b']);
    expect(await store.list('p')).toEqual(['p/a', 'p/b', 'pq/c']);
    expect(await store.list('')).toEqual(['p/a', 'p/b', 'pq/c', 'z']);
    expect(await codeOf(store.list('a//'))).toBe('INPUT_INVALID');
  });

  it('applies the same key rules as the real drivers', async () => {
    const store = new MemoryBlobStore();
    expect(await codeOf(store.put('../x', 'v'))).toBe('INPUT_INVALID');
    expect(await codeOf(store.get('a//b'))).toBe('INPUT_INVALID');
  });

  it('fails every operation while down, ping included', async () => {
    const store = new MemoryBlobStore();
    await store.put('k', 'v');
    store.down = true;
    for (const op of [store.get('k'), store.exists('k'), store.put('k', 'w'), store.delete('k'), store.list(''), store.ping()]) {
      expect(await codeOf(op)).toBe('STORAGE_UNAVAILABLE');
    }
    store.down = false;
    expect((await store.get('k')).toString()).toBe('v'); // the failed put did not act
  });

  it('fails the next n operations, optionally only some kinds', async () => {
    const store = new MemoryBlobStore();
    await store.put('k', 'v');
    store.failNext(2);
    expect(await codeOf(store.get('k'))).toBe('STORAGE_UNAVAILABLE');
    expect(await codeOf(store.exists('k'))).toBe('STORAGE_UNAVAILABLE');
    expect((await store.get('k')).toString()).toBe('v');

    store.failNext(1, ['put']);
    expect(await store.exists('k')).toBe(true);
    expect(await codeOf(store.put('k', 'w'))).toBe('STORAGE_UNAVAILABLE');
    await store.put('k', 'w');
    expect((await store.get('k')).toString()).toBe('w');
    expect(store.calls.filter((c) => c.op === 'put')).toHaveLength(3);
  });

  it('counts concurrent operations', async () => {
    const store = new MemoryBlobStore({ delayMs: 5 });
    await mapLimit([...Array(20).keys()], 4, (i) => store.put(`k/${i}`, String(i)));
    expect(store.maxInFlight).toBe(4);
    expect(store.inFlight).toBe(0);
    expect(store.keys()).toHaveLength(20);
    store.clear();
    expect(store.keys()).toEqual([]);
    expect(store.calls).toEqual([]);
    await store.close();
    expect(store.closed).toBe(true);
  });
});
