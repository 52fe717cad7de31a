import { expect } from 'vitest';
import { AppError } from '@lib/shared';

/** Awaits p, which must reject with an AppError, and returns its code (the blob stores' specs share it). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return (err as AppError).code;
  }
  throw new Error('expected a rejection');
}
