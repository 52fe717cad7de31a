import { NoSuchBucket, NoSuchKey, NotFound, S3ServiceException } from '@aws-sdk/client-s3';
import { AppError } from '@lib/shared';
import { describe, expect, it } from 'vitest';
import { S3BlobStore, s3ErrorToAppError } from './s3-blob-store.js';

function serviceError(name: string, status: number): S3ServiceException {
  return new S3ServiceException({ name, $fault: status >= 500 ? 'server' : 'client', $metadata: { httpStatusCode: status }, message: name });
}

const map = (err: unknown) => s3ErrorToAppError(err, 'get', 'bucket', 'k');

describe('s3ErrorToAppError', () => {
  it('maps a missing key to NOT_FOUND', () => {
    expect(map(new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'x' })).code).toBe('NOT_FOUND');
    expect(map(new NotFound({ $metadata: { httpStatusCode: 404 }, message: 'x' })).code).toBe('NOT_FOUND');
    expect(map(serviceError('UnknownError', 404)).code).toBe('NOT_FOUND');
  });

  it('maps a missing bucket to STORAGE_UNAVAILABLE, not NOT_FOUND', () => {
    expect(map(new NoSuchBucket({ $metadata: { httpStatusCode: 404 }, message: 'x' })).code).toBe('STORAGE_UNAVAILABLE');
  });

  it.each([
    ['5xx', serviceError('InternalError', 500)],
    ['503 SlowDown', serviceError('SlowDown', 503)],
    ['throttling with a 400', serviceError('ThrottlingException', 400)],
    ['429', serviceError('TooManyRequests', 429)],
    ['403', serviceError('AccessDenied', 403)],
    ['connection refused', Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })],
    ['socket reset', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
    ['timeout', Object.assign(new Error('timed out'), { name: 'TimeoutError' })],
  ])('maps %s to retryable STORAGE_UNAVAILABLE', (_name, err) => {
    const mapped = map(err);
    expect(mapped.code).toBe('STORAGE_UNAVAILABLE');
    expect(mapped.retryable).toBe(true);
    expect(mapped.cause).toBe(err);
  });

  it('maps a request S3 refuses (other 4xx) to INTERNAL', () => {
    expect(map(serviceError('InvalidArgument', 400)).code).toBe('INTERNAL');
  });

  it('passes AppErrors through', () => {
    const err = new AppError('INPUT_INVALID', 'x');
    expect(map(err)).toBe(err);
  });
});

describe('S3BlobStore options', () => {
  it('refuses an access key without its secret', () => {
    expect(() => new S3BlobStore({ region: 'us-east-1', bucket: 'b', forcePathStyle: true, accessKeyId: 'id' })).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID' }),
    );
  });
});
