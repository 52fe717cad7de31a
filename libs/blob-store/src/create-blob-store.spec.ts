import path from 'node:path';
import { loadConfig } from '@lib/shared';
import { describe, expect, it } from 'vitest';
import { createBlobStore } from './create-blob-store.js';
import { LocalBlobStore } from './local-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

describe('createBlobStore', () => {
  it('builds the local driver by default, rooted at DATA_DIR', () => {
    const store = createBlobStore(loadConfig({ DATA_DIR: 'some/data' }));
    expect(store).toBeInstanceOf(LocalBlobStore);
    expect((store as LocalBlobStore).rootDir).toBe(path.resolve('some/data'));
  });

  it('builds the S3 driver from the S3_* settings', async () => {
    const store = createBlobStore(
      loadConfig({
        BLOB_STORE: 's3',
        S3_ENDPOINT: 'http://127.0.0.1:9000',
        S3_BUCKET: 'my-bucket',
        S3_FORCE_PATH_STYLE: 'true',
        S3_ACCESS_KEY_ID: 'id',
        S3_SECRET_ACCESS_KEY: 'secret',
      }),
    );
    expect(store).toBeInstanceOf(S3BlobStore);
    expect((store as S3BlobStore).bucket).toBe('my-bucket');
    await store.close?.();
  });

  it('refuses an S3 access key without its secret', () => {
    expect(() => createBlobStore(loadConfig({ BLOB_STORE: 's3', S3_ACCESS_KEY_ID: 'id' }))).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });
});
