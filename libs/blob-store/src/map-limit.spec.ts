import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mapLimit } from './map-limit.js';

describe('mapLimit', () => {
  it('returns results in input order whatever order they finish in', async () => {
    const delays = [30, 5, 20, 0, 10, 1];
    const out = await mapLimit(delays, 3, async (ms, i) => {
      await sleep(ms);
      return `${i}:${ms}`;
    });
    expect(out).toEqual(delays.map((ms, i) => `${i}:${ms}`));
  });

  it.each([1, 3, 8, 100])('never has more than %i in flight, and uses the limit', async (limit) => {
    let inFlight = 0;
    let peak = 0;
    const items = [...Array(25).keys()];
    await mapLimit(items, limit, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep(i % 3);
      inFlight--;
      return i;
    });
    expect(peak).toBe(Math.min(limit, items.length));
  });

  it('handles an empty list', async () => {
    expect(await mapLimit([], 4, async () => 1)).toEqual([]);
  });

  it('rejects with the first rejection and starts nothing after it', async () => {
    const started: number[] = [];
    const boom = new Error('boom at 2');
    const run = mapLimit([0, 1, 2, 3, 4, 5, 6, 7], 2, async (i) => {
      started.push(i);
      await sleep(5);
      if (i === 2) throw boom;
      if (i === 3) throw new Error('later failure');
      return i;
    });
    await expect(run).rejects.toBe(boom);
    await sleep(30);
    // 2 and 3 ran together; once 2 failed, nothing new was started.
    expect(started).toEqual([0, 1, 2, 3]);
  });

  it('turns a synchronous throw into a rejection', async () => {
    await expect(
      mapLimit([1], 1, () => {
        throw new Error('sync');
      }),
    ).rejects.toThrow('sync');
  });

  it.each([0, -1, 1.5, Number.NaN])('refuses limit %s', async (limit) => {
    await expect(mapLimit([1], limit, async (x) => x)).rejects.toMatchObject({ code: 'INTERNAL' });
  });
});
