import { describe, expect, it } from 'vitest';
import { bm25Scores, buildEvidence, fuseRanks, pageOf, rankByScore, scoresFor, type TextChunk } from './evidence.js';

const chunks = (texts: string[]): TextChunk[] => {
  let at = 0;
  return texts.map((text, index) => {
    const c = { index, start: at, end: at + text.length, text };
    at += text.length;
    return c;
  });
};

describe('bm25Scores', () => {
  const doc = chunks([
    'A special magic number is hidden within the following text.',
    'One of the special magic numbers for pretty-owl is: 8841591. One of the special magic numbers for mad-hotel is: 7370196.',
    'The grass is green. The sky is blue.',
    'One of the special magic numbers for foggy-library is: 7088602. One of the special magic numbers for lazy-library is: 1.',
  ]);

  it("ranks the chunk with the question's rare key first, whatever the inflection of its common words", () => {
    const s = bm25Scores('What is the special magic number for foggy-library mentioned in the provided text?', doc);
    expect(rankByScore(s)[0]).toBe(3);
    expect(s[2]).toBe(0); // shares no term: not ranked
    expect(rankByScore(s)).not.toContain(2);
  });

  it('scores nothing for an empty query or document', () => {
    expect([...bm25Scores('   ', doc)]).toEqual([0, 0, 0, 0]);
    expect(bm25Scores('anything', [])).toHaveLength(0);
  });
});

describe('ranking, fusion and pages', () => {
  it('ranks by score, ties in document order, zero scores left out', () => {
    expect(rankByScore([0, 2, 5, 2, 0])).toEqual([2, 1, 3]);
  });

  it('fuses rankings by reciprocal rank', () => {
    const f = fuseRanks(3, [[0, 1], [1, 2]]);
    expect(rankByScore(f)).toEqual([1, 0, 2]);
    expect(scoresFor('fusion', {}, 3)).toBeNull();
    expect(rankByScore(scoresFor('fusion', { bm25: Float64Array.from([0, 1, 0]) }, 3)!)).toEqual([1]);
  });

  it('maps offsets to 1-based pages', () => {
    const starts = [0, 100, 250];
    expect([0, 99, 100, 249, 250, 10_000].map((o) => pageOf(o, starts))).toEqual([1, 1, 2, 2, 3, 3]);
  });
});

describe('buildEvidence', () => {
  const doc = chunks(['alpha beta', 'gamma', 'delta alpha', 'epsilon', 'zeta', 'eta', 'theta']);
  const bm25 = Float64Array.from([1, 0, 3, 0.5, 0.4, 0.3, 0.2]);

  it('lists the best chunks first with their offsets, pages and texts, and every expanded chunk', () => {
    const ev = buildEvidence(doc, { bm25 }, 'bm25', new Set([6]), [0, 15]);
    expect(ev.map((e) => e.chunkIndex)).toEqual([2, 0, 3, 4, 5, 6]);
    expect(ev[0]).toEqual({ chunkIndex: 2, charStart: 15, charEnd: 26, page: 2, score: 3, expanded: false, text: 'delta alpha' });
    expect(ev.at(-1)).toMatchObject({ chunkIndex: 6, expanded: true });
  });

  it('falls back to the other scorer, and is empty when none has scores', () => {
    expect(buildEvidence(doc, { bm25 }, 'attention', new Set())[0]!.chunkIndex).toBe(2);
    expect(buildEvidence(doc, {}, 'bm25', new Set())).toEqual([]);
  });
});

describe('bm25Scores with a cache scope', () => {
  it('scores as without one, whether the index is built or taken from the last question in the scope', () => {
    const chunks = ['The north gate code is 4417302.', 'The lighthouse code is 9081126.', 'Nothing of note here.'].map((text, index) => ({ index, start: 0, end: text.length, text }));
    const plain = bm25Scores('What is the north gate code?', chunks);
    expect(bm25Scores('What is the north gate code?', chunks, 'tenant-a')).toEqual(plain);
    expect(bm25Scores('What is the north gate code?', chunks, 'tenant-a')).toEqual(plain);
    expect(bm25Scores('Which lighthouse code?', chunks, 'tenant-a')).toEqual(bm25Scores('Which lighthouse code?', chunks));
    expect(bm25Scores('What is the north gate code?', chunks, 'tenant-b')).toEqual(plain);
  });
});
