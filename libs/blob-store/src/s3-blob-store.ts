import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
  type BucketLocationConstraint,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { AppError } from '@lib/shared';
import { DEFAULT_CONTENT_TYPE, assertValidKey, assertValidPrefix, toBuffer, type BlobStore, type PutOptions } from './blob-store.js';

export interface S3BlobStoreOptions {
  /** S3 endpoint URL (MinIO, s3rver or another S3-compatible server); unset for AWS. */
  endpoint?: string;
  /** S3 region. */
  region: string;
  /** Bucket that holds every blob. */
  bucket: string;
  /** Path-style URLs (`endpoint/bucket/key`); MinIO and s3rver need it. */
  forcePathStyle: boolean;
  /** Access key id; unset (with the secret) for the SDK's default credential chain. */
  accessKeyId?: string;
  /** Secret access key; set together with `accessKeyId`. */
  secretAccessKey?: string;
  /** Attempts per operation, the first one included; the SDK retries network errors, 5xx and throttling. Default 3. */
  maxAttempts?: number;
  /** Milliseconds allowed to open a connection. Default 5000. */
  connectionTimeoutMs?: number;
  /** Milliseconds one request (attempt) may take in all. Default 60000: a stuck request must not hold a job forever. */
  requestTimeoutMs?: number;
  /** Keys per ListObjects page (S3's most, and the default: 1000); smaller only to test paging. */
  listPageSize?: number;
}

/** S3 error names that mean "slow down / try later" whatever status they come with. */
const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestTimeout', 'RequestLimitExceeded', 'TooManyRequests']);
const MISSING_OBJECT = new Set(['NoSuchKey', 'NotFound']);

/**
 * Blobs as objects in one S3 bucket (AWS, MinIO, s3rver). A single PutObject is atomic on S3: readers see the old
 * object or the whole new one.
 */
export class S3BlobStore implements BlobStore {
  readonly bucket: string;
  private readonly client: S3Client;
  private readonly region: string;
  private readonly listPageSize: number;

  constructor(options: S3BlobStoreOptions) {
    if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
      throw new AppError('CONFIG_INVALID', 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together (or both unset)');
    }
    this.bucket = options.bucket;
    this.region = options.region;
    this.listPageSize = options.listPageSize ?? 1000;
    const config: S3ClientConfig = {
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      // With the SDK's default (WHEN_SUPPORTED) a streamed body is sent with aws-chunked framing and a trailing
      // checksum; servers that do not decode it (s3rver, some S3-compatible stores) store the framing as data,
      // silently. Buffers, which put() sends, are not affected; this keeps any streamed upload safe too.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: options.maxAttempts ?? 3,
      requestHandler: {
        connectionTimeout: options.connectionTimeoutMs ?? 5_000,
        requestTimeout: options.requestTimeoutMs ?? 60_000,
        throwOnRequestTimeout: true,
      },
    };
    if (options.endpoint !== undefined) config.endpoint = options.endpoint;
    if (options.accessKeyId !== undefined && options.secretAccessKey !== undefined) {
      config.credentials = { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey };
    }
    this.client = new S3Client(config);
  }

  /** PutOptions.durable is ignored: S3 acknowledges a PUT only once the object is stored. */
  async put(key: string, body: Uint8Array | string, contentType = DEFAULT_CONTENT_TYPE, _options?: PutOptions): Promise<void> {
    assertValidKey(key);
    const data = toBuffer(body);
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: data, ContentLength: data.byteLength, ContentType: contentType }),
      );
    } catch (err) {
      throw s3ErrorToAppError(err, 'put', this.bucket, key);
    }
  }

  async get(key: string): Promise<Buffer> {
    assertValidKey(key);
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key }));
      if (!out.Body) throw new AppError('STORAGE_UNAVAILABLE', `S3 get ${key}: response has no body`, { driver: 's3', key });
      // Reading the body is part of the request: a connection dropped here is an unavailable store, not a bug.
      const bytes = await out.Body.transformToByteArray();
      if (out.ContentLength !== undefined && bytes.byteLength !== out.ContentLength) {
        throw new AppError('STORAGE_UNAVAILABLE', `S3 get ${key}: got ${bytes.byteLength} of ${out.ContentLength} bytes`, {
          driver: 's3',
          key,
        });
      }
      return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    } catch (err) {
      throw s3ErrorToAppError(err, 'get', this.bucket, key);
    }
  }

  async exists(key: string): Promise<boolean> {
    assertValidKey(key);
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return true;
    } catch (err) {
      const mapped = s3ErrorToAppError(err, 'exists', this.bucket, key);
      if (mapped.code === 'NOT_FOUND') return false;
      throw mapped;
    }
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      // S3 answers 204 for a missing key too, so this is idempotent without a HEAD first.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      const mapped = s3ErrorToAppError(err, 'delete', this.bucket, key);
      if (mapped.code === 'NOT_FOUND') return;
      throw mapped;
    }
  }

  /**
   * ListObjects (version 1), page by page, each page starting after the last key of the one before. Without a
   * delimiter that is exactly what version 2's continuation token does, and every S3-compatible store takes it;
   * s3rver, the test server, cannot make version 2 tokens on Node 20 and later (it enciphers them with DES, which
   * OpenSSL 3 refuses) and answers 500 to any listing that needs a second page.
   */
  async list(prefix: string): Promise<string[]> {
    assertValidPrefix(prefix);
    const keys: string[] = [];
    let marker: string | undefined;
    try {
      for (;;) {
        const out = await this.client.send(new ListObjectsCommand({ Bucket: this.bucket, Prefix: prefix, MaxKeys: this.listPageSize, ...(marker ? { Marker: marker } : {}) }));
        const page = (out.Contents ?? []).flatMap((o) => (o.Key === undefined ? [] : [o.Key]));
        keys.push(...page);
        if (!out.IsTruncated || page.length === 0) break;
        marker = page.at(-1);
      }
    } catch (err) {
      throw s3ErrorToAppError(err, 'list', this.bucket, prefix);
    }
    return keys.sort();
  }

  /** HEAD on the bucket: reachable, credentials accepted, bucket present. Any failure is STORAGE_UNAVAILABLE. */
  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const mapped = s3ErrorToAppError(err, 'ping', this.bucket);
      if (mapped.code === 'STORAGE_UNAVAILABLE') throw mapped;
      throw new AppError('STORAGE_UNAVAILABLE', `S3 bucket ${this.bucket} is not usable: ${mapped.message}`, mapped.details, {
        cause: err,
      });
    }
  }

  /**
   * Creates the bucket when it is missing; for an embedded or test server, not for a production bucket (which
   * the deployment owns). Safe to race with another process doing the same.
   */
  async ensureBucket(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      return;
    } catch (err) {
      if (httpStatus(err) !== 404) throw s3ErrorToAppError(err, 'ensureBucket', this.bucket);
    }
    try {
      await this.client.send(
        new CreateBucketCommand({
          Bucket: this.bucket,
          ...(this.region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: this.region as BucketLocationConstraint } }),
        }),
      );
    } catch (err) {
      // Another process may have created it first (BucketAlreadyOwnedByYou / BucketAlreadyExists): fine if we can
      // use it now.
      try {
        await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
      } catch {
        throw s3ErrorToAppError(err, 'ensureBucket', this.bucket);
      }
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}

/**
 * The one place S3 failures become AppErrors:
 * - a missing key (NoSuchKey, or 404 on a HEAD) is NOT_FOUND;
 * - a missing bucket, network errors, timeouts, 5xx, throttling, and 401/403 (credentials or policy: this service
 *   cannot use the store until someone fixes it, and a retried job then succeeds) are STORAGE_UNAVAILABLE;
 * - any other 4xx means we sent a request S3 refuses, which is a bug: INTERNAL.
 */
export function s3ErrorToAppError(err: unknown, operation: string, bucket: string, key?: string): AppError {
  if (err instanceof AppError) return err;
  const name = err instanceof Error ? err.name : '';
  const status = httpStatus(err);
  const details: Record<string, unknown> = { driver: 's3', operation, bucket, ...(key === undefined ? {} : { key }), s3Error: name };
  if (status !== undefined) details.httpStatus = status;
  const what = `S3 ${operation} ${key ?? bucket}`;
  const reason = err instanceof Error ? `${name}: ${err.message}` : String(err);

  if (name === 'NoSuchBucket') {
    return new AppError('STORAGE_UNAVAILABLE', `${what}: bucket ${bucket} does not exist`, details, { cause: err });
  }
  if (MISSING_OBJECT.has(name) || status === 404) {
    return new AppError('NOT_FOUND', `blob not found: ${key ?? bucket}`, details, { cause: err });
  }
  if (status === undefined || status >= 500 || status === 401 || status === 403 || status === 408 || status === 429 || THROTTLING.has(name)) {
    return new AppError('STORAGE_UNAVAILABLE', `${what} failed (${reason})`, details, { cause: err });
  }
  return new AppError('INTERNAL', `${what} was refused (${reason}); this is a bug`, details, { cause: err });
}

function httpStatus(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}
