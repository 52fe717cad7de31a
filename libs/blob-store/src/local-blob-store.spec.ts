import { chmod, mkdir, mkdtemp, open, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AppError } from '@lib/shared';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { codeOf } from '../test/code-of.js';
import { LocalBlobStore } from './local-blob-store.js';


/** Every file under dir, relative, sorted. */
async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

describe('LocalBlobStore', () => {
  let tmp: string;
  let root: string;
  let store: LocalBlobStore;

  beforeEach(async () => {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'blob-store-'));
    root = path.join(tmp, 'root');
    store = new LocalBlobStore(root);
  });

  afterEach(async () => {
    await chmod(tmp, 0o755).catch(() => undefined);
    await rm(tmp, { recursive: true, force: true });
  });

  it('lists the keys under a prefix, sorted, without the files a put is still writing', async () => {
    expect(await store.list('')).toEqual([]); // no root yet
    for (const k of ['soft-prompts/t1/enc/b', 'soft-prompts/t1/enc/a', 'soft-prompts/t10/enc/c', 'sources/job_1', 'results/job_1.json']) await store.put(k, 'x');
    await writeFile(path.join(root, 'soft-prompts', 't1', 'enc', '.blob-0123456789abcdef.tmp'), 'half');
    expect(await store.list('soft-prompts/t1/')).toEqual(['soft-prompts/t1/enc/a', 'soft-prompts/t1/enc/b']);
    expect(await store.list('soft-prompts/t1')).toEqual(['soft-prompts/t1/enc/a', 'soft-prompts/t1/enc/b', 'soft-prompts/t10/enc/c']);
    expect(await store.list('sources/job_')).toEqual(['sources/job_1']);
    expect(await store.list('chunk-refs/')).toEqual([]);
    expect(await store.list('')).toHaveLength(5);
    await store.delete('soft-prompts/t1/enc/a');
    expect(await store.list('soft-prompts/t1/')).toEqual(['soft-prompts/t1/enc/b']);
    expect(await codeOf(store.list('../'))).toBe('INPUT_INVALID');
  });

  it('round-trips binary and UTF-8 blobs under nested keys', async () => {
    const binary = Uint8Array.from({ length: 512 }, (_, i) => i % 256);
    const text = 'héllo ✓ 日本語 \u{1F600}\n';
    expect(await store.exists('soft-prompts/t1/enc/abc')).toBe(false);

    await store.put('soft-prompts/t1/enc/abc', binary);
    await store.put('results/job-1.json', text, 'application/json');

    const got = await store.get('soft-prompts/t1/enc/abc');
    expect(Buffer.isBuffer(got)).toBe(true);
    expect(got.equals(Buffer.from(binary))).toBe(true);
    expect((await store.get('results/job-1.json')).toString('utf8')).toBe(text);
    expect(await store.exists('soft-prompts/t1/enc/abc')).toBe(true);
    expect(await filesUnder(root)).toEqual(['results/job-1.json', 'soft-prompts/t1/enc/abc']);

    await store.delete('soft-prompts/t1/enc/abc');
    expect(await store.exists('soft-prompts/t1/enc/abc')).toBe(false);
    await store.delete('soft-prompts/t1/enc/abc'); // idempotent
    await store.delete('never/written');
    expect(await codeOf(store.get('soft-prompts/t1/enc/abc'))).toBe('NOT_FOUND');
  });

  it('flushes a durable blob before its rename, and skips the flush for a blob that is not durable', async () => {
    await store.put('probe', 'x');
    const handle = await open(path.join(root, 'probe'), 'r');
    const proto = Object.getPrototypeOf(handle) as { sync: () => Promise<void> };
    await handle.close();
    const sync = vi.spyOn(proto, 'sync');
    try {
      await store.put('soft-prompts/t1/enc/a', Buffer.from('cache entry'), undefined, { durable: false });
      expect(sync).not.toHaveBeenCalled();
      await store.put('results/job-1.json', '{}', 'application/json');
      expect(sync).toHaveBeenCalledTimes(1);
    } finally {
      sync.mockRestore();
    }
    expect((await store.get('soft-prompts/t1/enc/a')).toString()).toBe('cache entry');
    expect(await filesUnder(root)).toEqual(['probe', 'results/job-1.json', 'soft-prompts/t1/enc/a']);
  });

  it('stores a view of a larger buffer as just its bytes', async () => {
    const big = Buffer.from('xxhelloxx');
    await store.put('k', big.subarray(2, 7));
    expect((await store.get('k')).toString()).toBe('hello');
  });

  it('stores an empty blob', async () => {
    await store.put('empty', new Uint8Array(0));
    expect(await store.exists('empty')).toBe(true);
    expect((await store.get('empty')).length).toBe(0);
  });

  it('answers NOT_FOUND for missing keys, including below a missing folder or below a blob', async () => {
    expect(await codeOf(store.get('missing'))).toBe('NOT_FOUND');
    expect(await codeOf(store.get('no/such/folder/key'))).toBe('NOT_FOUND');
    await store.put('a', 'file');
    expect(await codeOf(store.get('a/b'))).toBe('NOT_FOUND');
    expect(await store.exists('a/b')).toBe(false);
    await store.delete('a/b');
    await store.put('dir/x', 'x');
    // 'dir' is a folder, not a blob.
    expect(await codeOf(store.get('dir'))).toBe('NOT_FOUND');
    expect(await store.exists('dir')).toBe(false);
    await store.delete('dir');
    expect(await store.exists('dir/x')).toBe(true);
  });

  it('answers a key that would collide with a folder or sit below a blob as a damaged store (STORAGE_UNAVAILABLE, retryable)', async () => {
    await store.put('a', 'file');
    const below = (await store.put('a/b', 'x').catch((e: unknown) => e)) as AppError;
    expect(below.code).toBe('STORAGE_UNAVAILABLE');
    expect(below.retryable).toBe(true);
    await store.put('d/e', 'x');
    expect(await codeOf(store.put('d', 'x'))).toBe('STORAGE_UNAVAILABLE');
    expect(await filesUnder(root)).toEqual(['a', 'd/e']);
  });

  it.each([
    ['empty', ''],
    ['absolute', '/etc/passwd'],
    ['parent', '../outside'],
    ['parent inside', 'a/../../outside'],
    ['dot-dot alone', '..'],
    ['dot-dot in a name', 'a..b'],
    ['backslash', 'a\\..\\b'],
    ['NUL', 'a\0b'],
    ['empty segment', 'a//b'],
    ['trailing slash', 'a/'],
    ['dot segment', './a'],
    ['inner dot segment', 'a/./b'],
    ['too long', 'k'.repeat(1025)],
  ])('refuses a hostile key (%s) with INPUT_INVALID and touches nothing', async (_name, key) => {
    await mkdir(root, { recursive: true });
    expect(await codeOf(store.put(key, 'evil'))).toBe('INPUT_INVALID');
    expect(await codeOf(store.get(key))).toBe('INPUT_INVALID');
    expect(await codeOf(store.exists(key))).toBe('INPUT_INVALID');
    expect(await codeOf(store.delete(key))).toBe('INPUT_INVALID');
    expect(await filesUnder(tmp)).toEqual([]);
  });

  it('overwrites a blob with a shorter one', async () => {
    await store.put('k', Buffer.alloc(10_000, 1));
    await store.put('k', 'short');
    expect((await store.get('k')).toString()).toBe('short');
    expect(await filesUnder(root)).toEqual(['k']);
  });

  it('leaves one whole blob after concurrent puts of the same key, and readers never see a partial one', async () => {
    const size = 1 << 20;
    const writers = 16;
    await store.put('hot/key', Buffer.alloc(size, 255));
    let reading = true;
    const seen: Buffer[] = [];
    const reader = (async () => {
      while (reading) seen.push(await store.get('hot/key'));
    })();

    await Promise.all(Array.from({ length: writers }, (_, i) => store.put('hot/key', Buffer.alloc(size, i))));
    reading = false;
    await reader;

    const isWhole = (b: Buffer) => b.length === size && b.every((byte) => byte === b[0]);
    const final = await store.get('hot/key');
    expect(isWhole(final)).toBe(true);
    expect(final[0]).toBeLessThan(writers);
    expect(seen.length).toBeGreaterThan(0);
    for (const b of seen) expect(isWhole(b)).toBe(true);
    // No temp files left behind.
    expect(await filesUnder(root)).toEqual(['hot/key']);
  });

  describe('ping', () => {
    it('creates a missing root and succeeds', async () => {
      await store.ping();
      expect((await readdir(tmp)).includes('root')).toBe(true);
      await store.ping();
    });

    it('fails with STORAGE_UNAVAILABLE when the root is a file', async () => {
      await writeFile(root, 'not a folder');
      expect(await codeOf(store.ping())).toBe('STORAGE_UNAVAILABLE');
      expect(await codeOf(store.put('k', 'v'))).toBe('STORAGE_UNAVAILABLE');
      expect(await codeOf(store.put('a/k', 'v'))).toBe('STORAGE_UNAVAILABLE');
    });

    it('fails with STORAGE_UNAVAILABLE while a namespace folder is a file (DATA_DIR/sources replaced), and recovers once repaired', async () => {
      const probed = new LocalBlobStore(root, { namespaces: ['sources', 'results'] });
      await probed.ping(); // namespaces not created yet: ready
      await probed.put('results/r1', 'x');
      await writeFile(path.join(root, 'sources'), 'a file where the folder was');
      const err = (await probed.ping().catch((e: unknown) => e)) as AppError;
      expect(err.code).toBe('STORAGE_UNAVAILABLE');
      expect(err.message).toContain('sources');
      expect(await codeOf(probed.put('sources/job_1', 'text'))).toBe('STORAGE_UNAVAILABLE');
      await rm(path.join(root, 'sources'));
      await probed.ping();
      await probed.put('sources/job_1', 'text');
      expect(await filesUnder(root)).toEqual(['results/r1', 'sources/job_1']);
    });

    it('refuses a namespace that is not a valid key segment', () => {
      expect(() => new LocalBlobStore(root, { namespaces: ['../up'] })).toThrow(AppError);
    });

    it('fails with STORAGE_UNAVAILABLE when the root cannot be created', async () => {
      await writeFile(path.join(tmp, 'file'), 'x');
      const below = new LocalBlobStore(path.join(tmp, 'file', 'root'));
      const err = await below.ping().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect((err as AppError).code).toBe('STORAGE_UNAVAILABLE');
      expect((err as AppError).retryable).toBe(true);
    });

    // root ignores permission bits, so this can only be checked as another user.
    it.skipIf(process.getuid?.() === 0)('fails with STORAGE_UNAVAILABLE when the root is not writable', async () => {
      await mkdir(root);
      await chmod(root, 0o555);
      expect(await codeOf(store.ping())).toBe('STORAGE_UNAVAILABLE');
      expect(await codeOf(store.put('k', 'v'))).toBe('STORAGE_UNAVAILABLE');
    });
  });
});
