import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';
import type { S3BlobStoreOptions } from '../s3-blob-store.js';

/** The only key pair s3rver accepts. */
const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export interface TestS3Server {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  /** Options for `new S3BlobStore(...)` against this server and its bucket. */
  config: S3BlobStoreOptions & { endpoint: string; accessKeyId: string; secretAccessKey: string };
  /** Closes the server (dropping open connections, so clients fail at once) and removes its folder. Idempotent. */
  stop(): Promise<void>;
}

/** Starts an in-process s3rver on 127.0.0.1 with a random port and a temp folder, creates the bucket; for tests. */
export async function startTestS3Server(bucket: string): Promise<TestS3Server> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 's3rver-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory,
    configureBuckets: [{ name: bucket }],
  });
  let port: number;
  try {
    ({ port } = await server.run());
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      const closed = server.close();
      // close() waits for keep-alive connections to end, and the SDK keeps its sockets open: without this, stop()
      // hangs for the keep-alive timeout and requests on those sockets still succeed meanwhile.
      server.httpServer?.closeAllConnections();
      await closed;
      await rm(directory, { recursive: true, force: true });
    })());

  return {
    endpoint,
    config: { endpoint, region: 'us-east-1', bucket, forcePathStyle: true, ...S3RVER_CREDENTIALS },
    stop,
  };
}
