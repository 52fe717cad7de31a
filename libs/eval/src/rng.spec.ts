import { describe, expect, it } from 'vitest';
import { Rng } from './rng.js';

describe('Rng', () => {
  it('is deterministic per seed and differs across seeds', () => {
    const a = new Rng('42/x');
    const b = new Rng('42/x');
    const c = new Rng('43/x');
    const seqA = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(seqA);
    expect(Array.from({ length: 5 }, () => c.nextU32())).not.toEqual(seqA);
  });

  it('draws integers within both bounds, distinct samples and version-4 UUIDs', () => {
    const r = new Rng(7);
    const xs = Array.from({ length: 2000 }, () => r.int(1_000_000, 9_999_999));
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(1_000_000);
    expect(Math.max(...xs)).toBeLessThanOrEqual(9_999_999);
    const s = r.sampleRange(1000, 50);
    expect(new Set(s).size).toBe(50);
    expect(r.uuid4()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
