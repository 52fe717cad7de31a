export { startTestS3Server, type TestS3Server } from './s3-server.js';
export { MemoryBlobStore, type BlobOperation, type MemoryBlobStoreOptions } from './memory-blob-store.js';
