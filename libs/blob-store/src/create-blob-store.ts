import { assertNever, STORAGE_NAMESPACES, type Config } from '@lib/shared';
import type { BlobStore } from './blob-store.js';
import { LocalBlobStore } from './local-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

export type BlobStoreConfig = Pick<
  Config,
  'blobStore' | 'dataDir' | 's3Endpoint' | 's3Region' | 's3Bucket' | 's3ForcePathStyle' | 's3AccessKeyId' | 's3SecretAccessKey'
>;

/** The driver the configuration names. Creates nothing and connects to nothing; `ping()` checks the store. */
export function createBlobStore(config: BlobStoreConfig): BlobStore {
  switch (config.blobStore) {
    case 'local':
      return new LocalBlobStore(config.dataDir, { namespaces: STORAGE_NAMESPACES });
    case 's3':
      return new S3BlobStore({
        ...(config.s3Endpoint === undefined ? {} : { endpoint: config.s3Endpoint }),
        region: config.s3Region,
        bucket: config.s3Bucket,
        forcePathStyle: config.s3ForcePathStyle,
        ...(config.s3AccessKeyId === undefined ? {} : { accessKeyId: config.s3AccessKeyId }),
        ...(config.s3SecretAccessKey === undefined ? {} : { secretAccessKey: config.s3SecretAccessKey }),
      });
    default:
      return assertNever(config.blobStore, 'BLOB_STORE driver');
  }
}
