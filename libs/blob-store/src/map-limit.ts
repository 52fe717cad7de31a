import { AppError } from '@lib/shared';

/**
 * Runs fn over items with at most `limit` in flight; results in input order; the first rejection rejects.
 * After a rejection no further item is started; calls already running finish on their own and their outcome is
 * dropped. `limit` must be a whole number >= 1 (config gives BLOB_FETCH_CONCURRENCY).
 */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new AppError('INTERNAL', `mapLimit: limit must be a whole number >= 1, got ${limit} (this is a bug)`);
  }
  const results = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const lane = async (): Promise<void> => {
    while (!failed && next < items.length) {
      const index = next++;
      try {
        results[index] = await fn(items[index] as T, index);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  // Promise.all rejects with the first lane to fail and still observes the others, so a later rejection from a
  // call that was already running is not reported as unhandled.
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}
