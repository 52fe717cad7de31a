import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { groupEncodeChildren, planPaddedBatches } from './batch-plan.js';

const padded = (lengths: number[], batches: number[][]) => batches.reduce((a, b) => a + b.length * Math.max(...b.map((i) => lengths[i]!)), 0);

describe('planPaddedBatches', () => {
  it('keeps a few long chunks from padding a batch of short ones', () => {
    // Greedy (longest first, filled to the budget) would put the 10 long chunks with 22 short ones at width 256.
    const lengths = [...Array(10).fill(256), ...Array(54).fill(150)];
    const batches = planPaddedBatches(lengths, { maxBatchTokens: 8192, maxBatchSize: 64, batchCostTokens: 128 });
    expect(batches.map((b) => b.length)).toEqual([10, 54]);
    expect(padded(lengths, batches)).toBe(10 * 256 + 54 * 150);
  });

  it('covers every chunk once, within the limits, longest first', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 256 }), { maxLength: 200 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 8192 }),
        fc.integer({ min: 0, max: 512 }),
        (lengths, maxBatchSize, maxBatchTokens, batchCostTokens) => {
          const batches = planPaddedBatches(lengths, { maxBatchSize, maxBatchTokens, batchCostTokens });
          expect(batches.flat().sort((a, b) => a - b)).toEqual(lengths.map((_, i) => i));
          for (const b of batches) {
            expect(b.length).toBeGreaterThan(0);
            expect(b.length).toBeLessThanOrEqual(maxBatchSize);
            if (b.length > 1) expect(b.length * Math.max(...b.map((i) => lengths[i]!))).toBeLessThanOrEqual(maxBatchTokens);
          }
          const flat = batches.flat();
          for (let k = 1; k < flat.length; k++) expect(lengths[flat[k - 1]!]!).toBeGreaterThanOrEqual(lengths[flat[k]!]!);
        },
      ),
    );
  });
});

describe('groupEncodeChildren', () => {
  it('groups chunks of similar token length, most tokens first, within the chunk and token caps', () => {
    const chunks = [5, 200, 11, 200, 8, 199].map((tokens, index) => ({ index, start: index * 1000, end: index * 1000 + tokens * 3, tokens }));
    const children = groupEncodeChildren(chunks, { maxChunks: 2, maxTokens: 1000 });
    expect(children.map((c) => c.map((r) => r.i))).toEqual([[1, 3], [5, 2], [4, 0]]);
    expect(children[0]![0]).toEqual({ i: 1, start: 1000, end: 1600, tokens: 200 });
    const byTokens = groupEncodeChildren(chunks, { maxChunks: 64, maxTokens: 300 });
    expect(byTokens.map((c) => c.length)).toEqual([1, 1, 4]); // 200, 200, then 199 + 11 + 8 + 5
  });
});
