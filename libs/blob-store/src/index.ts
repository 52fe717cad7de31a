export { DEFAULT_CONTENT_TYPE, MAX_KEY_BYTES, assertValidKey, assertValidPrefix, type BlobStore, type PutOptions } from './blob-store.js';
export { LocalBlobStore, type LocalBlobStoreOptions } from './local-blob-store.js';
export { S3BlobStore, s3ErrorToAppError, type S3BlobStoreOptions } from './s3-blob-store.js';
export { createBlobStore, type BlobStoreConfig } from './create-blob-store.js';
export { mapLimit } from './map-limit.js';
