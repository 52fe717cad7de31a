import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { isRedisUnavailable } from '@lib/job-store';
import { AppError, ERROR_CODES, type ErrorCode } from '@lib/shared';

/**
 * One error shape for every failure: `{ error: { code, message, details? } }` with the status of its code. Upload
 * errors are mapped to the same codes; anything unknown is a 500 INTERNAL. Every 5xx is logged whole, and answered
 * without its internals (see publicError).
 */
@Catch()
export class AppErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const err = toHttpError(exception);
    if (err.code === 'INTERNAL') this.logger.error({ err: exception instanceof Error ? exception.stack : String(exception) }, 'unhandled error');
    else if (err.status >= 500) this.logger.warn({ code: err.code, err: err.message, details: err.details }, 'request failed on a server-side condition');
    sendError(res, err);
  }
}

/** What a client is told of a server-side failure: the code and what to do, never which key, bucket, path or driver. */
const PUBLIC_5XX: Partial<Record<ErrorCode, string>> = {
  STORAGE_UNAVAILABLE: 'the blob store is unavailable; retry later',
  QUEUE_UNAVAILABLE: 'the queue (Redis) is unavailable; retry later',
  INTERNAL: 'internal error',
};

/**
 * The error as answered: a 4xx as raised (its message and details are about the request), a 5xx reduced to its code
 * and a fixed message. A server-side cause names internals (the blob key and driver, a folder under DATA_DIR, a Redis
 * reply) that are for the log, which has them, not for the client; only `retryAfterSeconds` is kept, as Retry-After.
 */
export function publicError(err: AppError): AppError {
  if (err.status < 500) return err;
  const message = PUBLIC_5XX[err.code] ?? `the server could not complete the request (${err.code})`;
  const retryAfterSeconds = err.details?.retryAfterSeconds;
  return new AppError(err.code, message, typeof retryAfterSeconds === 'number' ? { retryAfterSeconds } : undefined);
}

/** Writes the one error shape, with Retry-After where the client should come back later. */
export function sendError(res: Response, raised: AppError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const err = publicError(raised);
  // Unavailability is temporary: tell clients when to come back even when the cause gave no figure.
  const retryAfter = err.details?.retryAfterSeconds ?? (ERROR_CODES[err.code].status === 503 ? 5 : undefined);
  if (typeof retryAfter === 'number') res.setHeader('Retry-After', String(retryAfter));
  res.status(ERROR_CODES[err.code].status).json({ error: err.toJSON() });
}

export function toHttpError(exception: unknown): AppError {
  if (exception instanceof AppError) return exception;
  if (isRedisUnavailable(exception)) return new AppError('QUEUE_UNAVAILABLE', 'the queue (Redis) is unavailable; retry later', { retryAfterSeconds: 5 });
  const e = exception as { type?: string; status?: number; code?: string; message?: string };
  // multer (bodies are read by readBody: no body parser runs)
  if (e?.code === 'LIMIT_FILE_SIZE') return new AppError('INPUT_TOO_LARGE', 'the uploaded file is over the size limit');
  if (typeof e?.code === 'string' && e.code.startsWith('LIMIT_')) return new AppError('INPUT_INVALID', `upload rejected: ${e.message}`);
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const code: ErrorCode = status === 404 ? 'NOT_FOUND' : status === 413 ? 'INPUT_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : status < 500 ? 'INPUT_INVALID' : 'INTERNAL';
    return new AppError(code, exception.message);
  }
  if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) return new AppError('INPUT_INVALID', e.message ?? 'bad request');
  return new AppError('INTERNAL', 'internal error');
}
