import { describe, expect, it } from 'vitest';
import { DocumentChunks } from './document-chunks.js';

const valid = {
  v: 2,
  sourceSha256: 'a'.repeat(64),
  chars: 300,
  chunks: 3,
  batches: [
    [
      { i: 2, start: 200, end: 300, tokens: 30 },
      { i: 0, start: 0, end: 110, tokens: 33 },
    ],
    [{ i: 1, start: 100, end: 210, tokens: 31 }],
  ],
};

describe('DocumentChunks (the stored chunk references of a document, issue 18 item 6)', () => {
  it('accepts references that name every chunk once, each inside the text', () => {
    expect(DocumentChunks.safeParse(valid).success).toBe(true);
  });

  it.each([
    ['a chunk missing', { ...valid, chunks: 4 }],
    ['a chunk given twice', { ...valid, chunks: 4, batches: [...valid.batches, [{ i: 1, start: 100, end: 210, tokens: 31 }]] }],
    ['a chunk index past the count', { ...valid, batches: [[{ i: 0, start: 0, end: 110, tokens: 33 }], [{ i: 1, start: 100, end: 210, tokens: 31 }, { i: 7, start: 200, end: 300, tokens: 30 }]] }],
    ['a chunk past the end of the text', { ...valid, chars: 250 }],
    ['an empty chunk', { ...valid, batches: [[{ i: 0, start: 5, end: 5, tokens: 1 }], [{ i: 1, start: 100, end: 210, tokens: 31 }, { i: 2, start: 200, end: 300, tokens: 30 }]] }],
    ['a huge chunk count', { ...valid, chunks: 1e15 }],
    ['a wrong type', { ...valid, chars: 'many' }],
    ['null', null],
  ])('refuses %s (a damaged copy: the text is cut again)', (_name, stored) => {
    expect(DocumentChunks.safeParse(stored).success).toBe(false);
  });
});
