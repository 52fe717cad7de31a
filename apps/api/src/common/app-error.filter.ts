import { Catch, HttpException, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { isRedisUnavailable } from '@lib/job-store';
import { AppError, ERROR_CODES, type ErrorCode } from '@lib/shared';

/**
 * One error shape for every failure: `{ error: { code, message, details? } }` with the status of its code. Body
 * parser and upload errors are mapped to the same codes; anything unknown is a 500 INTERNAL, logged.
 */
@Catch()
export class AppErrorFilter implements ExceptionFilter {
  constructor(private readonly logger: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const err = toHttpError(exception);
    if (err.code === 'INTERNAL') this.logger.error({ err: exception instanceof Error ? exception.stack : String(exception) }, 'unhandled error');
    sendError(res, err);
  }
}

/** Writes the one error shape, with Retry-After where the client should come back later. */
export function sendError(res: Response, err: AppError): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  // Unavailability is temporary: tell clients when to come back even when the cause gave no figure.
  const retryAfter = err.details?.retryAfterSeconds ?? (ERROR_CODES[err.code].status === 503 ? 5 : undefined);
  if (typeof retryAfter === 'number') res.setHeader('Retry-After', String(retryAfter));
  res.status(ERROR_CODES[err.code].status).json({ error: err.toJSON() });
}

export function toHttpError(exception: unknown): AppError {
  if (exception instanceof AppError) return exception;
  if (isRedisUnavailable(exception)) return new AppError('QUEUE_UNAVAILABLE', 'the queue (Redis) is unavailable; retry later', { retryAfterSeconds: 5 });
  const e = exception as { type?: string; status?: number; code?: string; message?: string };
  // body-parser
  if (e?.type === 'entity.too.large') return new AppError('INPUT_TOO_LARGE', 'the request body is over the size limit');
  if (e?.type === 'entity.parse.failed') return new AppError('INPUT_INVALID', 'the request body is not valid JSON');
  // The JSON parser's verify step checks one thing only: that the body is UTF-8.
  if (e?.type === 'entity.verify.failed') return new AppError('INPUT_INVALID_UTF8', 'the JSON body is not valid UTF-8');
  if (e?.type === 'encoding.unsupported' || e?.type === 'charset.unsupported') return new AppError('UNSUPPORTED_MEDIA_TYPE', e.message ?? 'unsupported encoding');
  // multer
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
