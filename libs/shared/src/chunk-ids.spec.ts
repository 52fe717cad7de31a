import { describe, expect, it } from 'vitest';
import { decodeChunkIds, encodeChunkIds } from './chunk-ids.js';

describe('chunk ids blob', () => {
  it('gives back each chunk\'s ids and the tokenizer that measured them, at any buffer offset', () => {
    const chunks = [[101, 7, 8], [], [101, 65_535, 70_000, 3]];
    const blob = encodeChunkIds({ tokenizer: 'tok-abc', chunks });
    // A Buffer from a store may sit at an odd offset of a larger pool.
    const pooled = Buffer.concat([Buffer.from([1]), blob]).subarray(1);
    for (const b of [blob, pooled]) {
      const d = decodeChunkIds(b)!;
      expect(d.tokenizer).toBe('tok-abc');
      expect(d.count).toBe(3);
      expect(chunks.map((_, i) => [...d.chunk(i)!])).toEqual(chunks);
      expect(d.chunk(3)).toBeUndefined();
    }
  });

  it('refuses what is not one: another format, a truncated blob, a wrong length', () => {
    const blob = encodeChunkIds({ tokenizer: 't', chunks: [[1, 2, 3]] });
    expect(decodeChunkIds(Buffer.from('{"not":"ids"}'))).toBeUndefined();
    expect(decodeChunkIds(blob.subarray(0, blob.length - 4))).toBeUndefined();
    expect(decodeChunkIds(Buffer.concat([blob, Buffer.alloc(4)]))).toBeUndefined();
  });
});
