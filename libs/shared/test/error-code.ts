import { expect } from 'vitest';
import { AppError, type ErrorCode } from '../src/errors.js';

/** Runs fn, which must throw an AppError, and returns its code (a test fails when nothing or something else is thrown). */
export function codeOf(fn: () => unknown): ErrorCode {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  if (thrown === undefined) throw new Error('expected an AppError, but nothing was thrown');
  expect(thrown).toBeInstanceOf(AppError);
  return (thrown as AppError).code;
}
