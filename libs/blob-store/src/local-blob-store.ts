import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AppError } from '@lib/shared';
import { assertValidKey, assertValidPrefix, toBuffer, type BlobStore, type PutOptions } from './blob-store.js';

/** A path component that does not exist, or that is a file where a folder was expected: there is no blob there. */
const ABSENT = new Set(['ENOENT', 'ENOTDIR']);
/** What a put fails with when a file sits where a folder is needed, or a folder where the blob goes. */
const COLLISION = new Set(['ENOTDIR', 'EEXIST', 'EISDIR']);

export interface LocalBlobStoreOptions {
  /**
   * Top-level folders the readiness probe checks besides the root (the first segments of the keys the caller
   * writes, `STORAGE_NAMESPACES`): each must be absent or a folder this process can write to.
   */
  namespaces?: readonly string[];
}

/**
 * Blobs as files under one folder: key `a/b/c` is `<rootDir>/a/b/c`. For a single machine (development, the CLI,
 * tests); workers on several machines need the S3 driver or a shared volume.
 *
 * Content types are not stored. Folders left empty by `delete` are kept: removing them would race with a
 * concurrent `put` that has just created them.
 */
export class LocalBlobStore implements BlobStore {
  readonly rootDir: string;
  private readonly namespaces: readonly string[];

  constructor(rootDir: string, options: LocalBlobStoreOptions = {}) {
    this.rootDir = path.resolve(rootDir);
    this.namespaces = options.namespaces ?? [];
    for (const ns of this.namespaces) assertValidKey(ns);
  }

  async put(key: string, body: Uint8Array | string, _contentType?: string, options: PutOptions = {}): Promise<void> {
    const file = this.pathOf(key);
    const data = toBuffer(body);
    const dir = path.dirname(file);
    // Same folder as the target, so rename() stays on one file system and is atomic: a reader sees the old
    // blob or the new one, and concurrent writers of one key each rename a whole file (the last one wins).
    const tmp = path.join(dir, `.blob-${randomBytes(8).toString('hex')}.tmp`);
    try {
      // The folder usually exists (soft prompts share one per tenant and encoder): create it only when it is missing.
      const handle = await open(tmp, 'wx', 0o644).catch(async (err: unknown) => {
        if (errno(err) !== 'ENOENT') throw err;
        await mkdir(dir, { recursive: true });
        return open(tmp, 'wx', 0o644);
      });
      try {
        await handle.writeFile(data);
        // Flushed before the rename, so a crash cannot leave the new name pointing at a partly written file. A blob
        // that is not durable (a soft prompt: one small file per chunk, where the fsync was most of an encode child's
        // write time) skips it: after a power loss it may be empty or partly written under its name, which its
        // reader detects (soft prompts carry a checksum) and computes again.
        if (options.durable !== false) await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      if (COLLISION.has(errno(err)) && (await this.rootIsFolder())) {
        // A file where a folder of the key should be (`a` is a file, `a/b` is wanted), or a folder where the blob
        // goes. S3 allows both, files cannot; and the keys of storage-keys.ts never collide like this, so it means the
        // store's folders were damaged (DATA_DIR/sources replaced by a file): the store is unusable for this key until
        // someone repairs it, not a fault of the caller's. Retryable, as any unavailable store.
        const details = { driver: 'local', operation: 'put', key, errno: errno(err) };
        throw new AppError('STORAGE_UNAVAILABLE', `local blob store put ${key} failed: a file stands where a folder is needed, or a folder where the blob goes (${errno(err)})`, details, {
          cause: err,
        });
      }
      throw this.toAppError(err, 'put', key);
    }
  }

  async get(key: string): Promise<Buffer> {
    const file = this.pathOf(key);
    try {
      return await readFile(file);
    } catch (err) {
      if (ABSENT.has(errno(err)) || errno(err) === 'EISDIR') throw notFound(key);
      throw this.toAppError(err, 'get', key);
    }
  }

  async exists(key: string): Promise<boolean> {
    const file = this.pathOf(key);
    try {
      return (await stat(file)).isFile();
    } catch (err) {
      if (ABSENT.has(errno(err))) return false;
      throw this.toAppError(err, 'exists', key);
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    try {
      await unlink(file);
    } catch (err) {
      // A folder at the key (EISDIR) holds no blob either, so there is nothing to delete.
      if (ABSENT.has(errno(err)) || errno(err) === 'EISDIR') return;
      throw this.toAppError(err, 'delete', key);
    }
  }

  /** Walks the folder the prefix names up to its last '/'; the files put() is still writing (.blob-*.tmp) are not blobs. */
  async list(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix);
    const dirPart = prefix.includes('/') ? prefix.slice(0, prefix.lastIndexOf('/')) : '';
    const dir = dirPart === '' ? this.rootDir : this.pathOf(dirPart);
    let entries: import('node:fs').Dirent[];
    try {
      entries = await readdir(dir, { recursive: true, withFileTypes: true });
    } catch (err) {
      if (ABSENT.has(errno(err))) return [];
      throw this.toAppError(err, 'list', prefix);
    }
    const keys: string[] = [];
    for (const e of entries) {
      if (!e.isFile() || (e.name.startsWith('.blob-') && e.name.endsWith('.tmp'))) continue;
      const key = path.relative(this.rootDir, path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).split(path.sep).join('/');
      if (key.startsWith(prefix)) keys.push(key);
    }
    return keys.sort();
  }

  /**
   * Creates the root folder when missing, then checks that it is a folder this process can write to, and so is each
   * namespace folder that exists (one that does not is created by the first put). Creating the root here (as `put`
   * would) keeps a fresh setup from failing its readiness probe before anything was ever written. A few stat and
   * access calls: cheap enough for every readiness probe.
   */
  async ping(): Promise<void> {
    let checking = this.rootDir;
    try {
      await mkdir(this.rootDir, { recursive: true });
      await assertWritableFolder(this.rootDir);
      for (const ns of this.namespaces) {
        checking = this.pathOf(ns);
        await assertWritableFolder(checking).catch((err: unknown) => {
          if (errno(err) !== 'ENOENT') throw err;
        });
      }
    } catch (err) {
      throw new AppError(
        'STORAGE_UNAVAILABLE',
        `local blob store folder ${checking} is not a writable folder (${errno(err) || String(err)})`,
        { driver: 'local', operation: 'ping', errno: errno(err) || undefined },
        { cause: err },
      );
    }
  }

  private async rootIsFolder(): Promise<boolean> {
    return stat(this.rootDir).then(
      (st) => st.isDirectory(),
      () => false,
    );
  }

  private pathOf(key: string): string {
    assertValidKey(key);
    return path.join(this.rootDir, ...key.split('/'));
  }

  private toAppError(err: unknown, operation: string, key: string): AppError {
    if (err instanceof AppError) return err;
    const code = errno(err);
    const details = { driver: 'local', operation, key, errno: code || undefined };
    if (code === 'ENAMETOOLONG') {
      return new AppError('INPUT_INVALID', `blob key too long for the file system: ${key}`, details, { cause: err });
    }
    // EACCES, EROFS, ENOSPC, EIO, EMFILE, a root that is gone or not a folder...: the store cannot be used now.
    return new AppError('STORAGE_UNAVAILABLE', `local blob store ${operation} ${key} failed (${code || String(err)})`, details, {
      cause: err,
    });
  }
}

async function assertWritableFolder(dir: string): Promise<void> {
  if (!(await stat(dir)).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
  await access(dir, constants.W_OK | constants.X_OK);
}

function notFound(key: string): AppError {
  return new AppError('NOT_FOUND', `blob not found: ${key}`, { key });
}

function errno(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}
