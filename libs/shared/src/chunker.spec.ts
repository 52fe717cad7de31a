import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chunkText, countCodePoints, type Chunk } from './chunker.js';

// Fragments that stress the cut rules: sentence ends, line breaks (CRLF too), emoji sequences, CJK, combining marks.
const FRAGMENTS = [
  'word', 'longerword', 'a', 'the', ' ', ' ', '  ', '. ', '! ', '? ', '.', ',', '\n', '\n\n', '\r\n', '\t',
  '"Quoted." ', 'e\u0301', 'n\u0303o', '👍🏽', '👨‍👩‍👧', '🇫🇷', '🙂', '日本語', 'です。', '中文！', 'Z\u0351\u036b\u0343\u036a\u0302',
  'ｶﾀｶﾅ', '…', 'x'.repeat(40), '\u2028', 'Ω', '𝔘𝔫𝔦', '1234567',
];
const textArb = fc.array(fc.constantFrom(...FRAGMENTS), { minLength: 0, maxLength: 300 }).map((p) => p.join(''));
const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

function graphemeBoundaries(text: string): Set<number> {
  const b = new Set<number>([text.length]);
  for (const s of graphemes.segment(text)) b.add(s.index);
  return b;
}

function checkCover(text: string, chunks: Chunk[], overlapChars: number): void {
  if (text.length === 0) {
    expect(chunks).toEqual([]);
    return;
  }
  expect(chunks[0]!.start).toBe(0);
  expect(chunks.at(-1)!.end).toBe(text.length);
  chunks.forEach((c, i) => {
    expect(c.index).toBe(i);
    expect(c.end).toBeGreaterThan(c.start);
    expect(c.text).toBe(text.slice(c.start, c.end));
    expect(c.text.isWellFormed()).toBe(true);
    if (i > 0) {
      const prev = chunks[i - 1]!;
      expect(c.start).toBeGreaterThan(prev.start);
      expect(c.end).toBeGreaterThan(prev.end);
      expect(c.start).toBeLessThanOrEqual(prev.end); // no gap
      expect(countCodePoints(text.slice(c.start, prev.end))).toBeLessThanOrEqual(overlapChars);
    }
  });
}

describe('chunkText properties', () => {
  it('covers the text in order, without gaps, each chunk within chunkChars', () => {
    fc.assert(
      fc.property(textArb, fc.integer({ min: 20, max: 200 }), (text, chunkChars) => {
        const chunks = chunkText(text, { chunkChars });
        checkCover(text, chunks, 0);
        expect(chunks.map((c) => c.text).join('')).toBe(text);
        for (const c of chunks) expect(countCodePoints(c.text)).toBeLessThanOrEqual(chunkChars);
      }),
      { numRuns: 300 },
    );
  });

  it('never cuts inside a code point or a grapheme cluster', () => {
    fc.assert(
      fc.property(textArb, fc.integer({ min: 20, max: 120 }), fc.integer({ min: 0, max: 15 }), (text, chunkChars, overlap) => {
        const bounds = graphemeBoundaries(text);
        for (const c of chunkText(text, { chunkChars, overlapChars: overlap })) {
          expect(bounds.has(c.start)).toBe(true);
          expect(bounds.has(c.end)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keeps overlaps within overlapChars and makes progress', () => {
    fc.assert(
      fc.property(textArb, fc.integer({ min: 20, max: 120 }), fc.integer({ min: 1, max: 19 }), (text, chunkChars, overlapChars) => {
        const chunks = chunkText(text, { chunkChars, overlapChars });
        checkCover(text, chunks, overlapChars);
        for (const c of chunks) expect(countCodePoints(c.text)).toBeLessThanOrEqual(chunkChars);
      }),
      { numRuns: 300 },
    );
  });

  it('re-splits chunks that tokenize past maxTokens', () => {
    // A stand-in tokenizer: one token per UTF-8 byte plus one for CLS, the worst case of a byte-level BPE.
    const countTokens = (t: string) => Buffer.byteLength(t, 'utf8') + 1;
    fc.assert(
      fc.property(textArb, fc.integer({ min: 40, max: 200 }), fc.integer({ min: 30, max: 120 }), (text, chunkChars, maxTokens) => {
        const chunks = chunkText(text, { chunkChars, maxTokens, countTokens });
        checkCover(text, chunks, 0);
        expect(chunks.map((c) => c.text).join('')).toBe(text);
        for (const c of chunks) {
          expect(countTokens(c.text)).toBeLessThanOrEqual(maxTokens);
          expect(countCodePoints(c.text)).toBeLessThanOrEqual(chunkChars);
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('chunkText cut rules', () => {
  it('cuts back to the last sentence end', () => {
    const text = 'First sentence here. Second one is here. Third runs on and on without end';
    const chunks = chunkText(text, { chunkChars: 50 });
    expect(chunks[0]!.text).toBe('First sentence here. Second one is here. ');
  });

  it('cuts at a line break before a later word boundary', () => {
    const chunks = chunkText('alpha beta\ngamma delta epsilon zeta', { chunkChars: 20 });
    expect(chunks[0]!.text).toBe('alpha beta\n');
  });

  it('falls back to a word boundary, then to a hard cut', () => {
    expect(chunkText('aaaa bbbb cccc dddd', { chunkChars: 12 })[0]!.text).toBe('aaaa bbbb ');
    expect(chunkText('x'.repeat(25), { chunkChars: 10 }).map((c) => c.text.length)).toEqual([10, 10, 5]);
  });

  it('keeps CRLF, emoji sequences and combining marks whole at a hard cut', () => {
    const family = '👨‍👩‍👧';
    const text = family.repeat(10);
    const chunks = chunkText(text, { chunkChars: 12 });
    for (const c of chunks) expect(c.text.length % family.length).toBe(0);
    expect(chunkText('ab\r\ncd', { chunkChars: 4 }).map((c) => c.text)).toEqual(['ab\r\n', 'cd']);
  });

  it('treats CJK full stops as sentence ends without a space', () => {
    const chunks = chunkText('今日は晴れです。明日は雨でしょう。', { chunkChars: 12 });
    expect(chunks[0]!.text).toBe('今日は晴れです。');
  });

  it('rejects bad settings with a stable code', () => {
    expect(() => chunkText('abc', { chunkChars: 0 })).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
    expect(() => chunkText('abc', { chunkChars: 10, overlapChars: 10 })).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
  });

  it('chunks a 2 MB document in reasonable time', () => {
    const text = 'The quick brown fox jumps over the lazy dog. '.repeat(45_000);
    const t0 = performance.now();
    const chunks = chunkText(text, { chunkChars: 512 });
    expect(chunks.length).toBeGreaterThan(3900);
    expect(performance.now() - t0).toBeLessThan(20_000);
  });
});

describe('chunkText overlap regressions', () => {
  it('never makes a chunk that ends where the previous one ended (found by fast-check)', () => {
    const text = 'longerwordZ\u0351\u036b\u0343\u036a\u0302word👍🏽';
    const chunks = chunkText(text, { chunkChars: 20, overlapChars: 19 });
    for (let i = 1; i < chunks.length; i++) expect(chunks[i]!.end).toBeGreaterThan(chunks[i - 1]!.end);
    expect(chunks.at(-1)!.end).toBe(text.length);
  });
});
