import { describe, expect, it } from 'vitest';
import { AppError, assertNever, ERROR_CODES, isAppError, toAppError, type ErrorCode } from './errors.js';

const CODES = Object.keys(ERROR_CODES) as ErrorCode[];

describe('toAppError', () => {
  it('returns an AppError as is', () => {
    const err = new AppError('STORAGE_UNAVAILABLE', 'bucket down', { bucket: 'b' });
    expect(toAppError(err)).toBe(err);
  });

  it('wraps an Error as INTERNAL, keeping its message and the original as cause', () => {
    const original = new TypeError('x is not a function');
    const wrapped = toAppError(original);
    expect(wrapped).toBeInstanceOf(AppError);
    expect(wrapped.code).toBe('INTERNAL');
    expect(wrapped.message).toBe('x is not a function');
    expect(wrapped.cause).toBe(original);
    expect(wrapped.retryable).toBe(false);
  });

  it.each([
    ['a string', 'boom', 'boom'],
    ['a number', 42, '42'],
    ['undefined', undefined, 'undefined'],
    ['null', null, 'null'],
    ['a plain object', { code: 'INPUT_INVALID', message: 'looks like one' }, '[object Object]'],
  ])('wraps %s as INTERNAL', (_what, thrown, message) => {
    const wrapped = toAppError(thrown);
    expect(wrapped).toBeInstanceOf(AppError);
    expect(wrapped.code).toBe('INTERNAL');
    expect(wrapped.message).toBe(message);
    expect(wrapped.cause).toBe(thrown);
  });
});

describe('AppError', () => {
  it('carries code, details, status and retryable from ERROR_CODES', () => {
    const err = new AppError('QUEUE_UNAVAILABLE', 'redis down', { host: 'r' });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('AppError');
    expect(err.code).toBe('QUEUE_UNAVAILABLE');
    expect(err.details).toEqual({ host: 'r' });
    expect(err.status).toBe(503);
    expect(err.retryable).toBe(true);
    expect(new AppError('INPUT_INVALID', 'bad').retryable).toBe(false);
  });

  it('serialises to { code, message, details? } without the stack', () => {
    expect(JSON.parse(JSON.stringify(new AppError('NOT_FOUND', 'no such job')))).toEqual({ code: 'NOT_FOUND', message: 'no such job' });
    expect(new AppError('INPUT_TOO_LARGE', 'big', { chars: 9 }).toJSON()).toEqual({
      code: 'INPUT_TOO_LARGE',
      message: 'big',
      details: { chars: 9 },
    });
  });

  it('isAppError tells AppErrors from look-alikes', () => {
    expect(isAppError(new AppError('INTERNAL', 'x'))).toBe(true);
    expect(isAppError(new Error('x'))).toBe(false);
    expect(isAppError({ code: 'INTERNAL', message: 'x' })).toBe(false);
  });
});

describe('ERROR_CODES', () => {
  it.each(CODES)('%s has a 4xx/5xx status, a boolean retryable flag and a non-zero exit code', (code) => {
    const { status, retryable, exitCode } = ERROR_CODES[code];
    expect(Number.isInteger(status)).toBe(true);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(600);
    expect(typeof retryable).toBe('boolean');
    expect(Number.isInteger(exitCode)).toBe(true);
    expect(exitCode).toBeGreaterThan(0);
  });

  it('marks only server-side conditions and 429s retryable: any other 4xx is never retryable', () => {
    for (const code of CODES) {
      const { status, retryable } = ERROR_CODES[code];
      if (status === 429) expect(retryable, code).toBe(true);
      else if (status < 500) expect(retryable, code).toBe(false);
    }
  });

  it('has every code the style guide and the modules rely on', () => {
    for (const code of ['INPUT_INVALID', 'MODEL_MISMATCH', 'STORAGE_UNAVAILABLE', 'BLOB_CORRUPT', 'CONFIG_INVALID', 'INTERNAL']) {
      expect(CODES).toContain(code);
    }
  });
});

describe('assertNever', () => {
  it('throws INTERNAL naming the unhandled value', () => {
    let err: unknown;
    try {
      assertNever('surprise' as never, 'task type');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('INTERNAL');
    expect((err as AppError).message).toContain('task type');
    expect((err as AppError).message).toContain('surprise');
  });
});
