import { afterAll, describe, expect, it } from 'vitest';
import { extractText } from './extract.js';
import { ExtractionPool } from './isolated.js';
import { makeDocx, makePdf } from './testing/index.js';

const LIMITS = { maxChars: 1_000_000, maxPdfPages: 1000, maxDocxUncompressedBytes: 10_000_000, timeoutMs: 10_000 };
const pool = new ExtractionPool({ threads: 2, memoryMb: 256, maxQueue: 2 });
const extractTextIsolated = pool.extract.bind(pool);

afterAll(() => pool.close());

describe('ExtractionPool (worker threads)', () => {
  it('gives the same text as in-process extraction', async () => {
    const pdf = makePdf(['First page text.', 'Second page text.']);
    expect(await extractTextIsolated(pdf, 'pdf', LIMITS)).toBe(await extractText(pdf, 'pdf', LIMITS));
    const docx = makeDocx(['One paragraph.', 'Another.']);
    expect(await extractTextIsolated(docx, 'docx', LIMITS)).toBe(await extractText(docx, 'docx', LIMITS));
  });

  it('carries the error code back from the worker', async () => {
    await expect(extractTextIsolated(new TextEncoder().encode('%PDF-1.4 broken'), 'pdf', LIMITS)).rejects.toMatchObject({ code: 'DOCUMENT_UNREADABLE' });
    const pages = makePdf(Array.from({ length: 5 }, (_, i) => `Page ${i}`));
    await expect(extractTextIsolated(pages, 'pdf', { ...LIMITS, maxPdfPages: 2 })).rejects.toMatchObject({ code: 'INPUT_TOO_LARGE' });
  });

  it('stops an extraction at the time limit, whatever the parser is doing', async () => {
    const big = makePdf(Array.from({ length: 400 }, (_, i) => `Page ${i} `.repeat(50)));
    const t0 = Date.now();
    await expect(extractTextIsolated(big, 'pdf', { ...LIMITS, timeoutMs: 100 })).rejects.toMatchObject({ code: 'DOCUMENT_UNREADABLE' });
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('refuses with 429 OVERLOADED and Retry-After once every thread is busy and the queue is full, and recovers', async () => {
    const big = makePdf(Array.from({ length: 300 }, (_, i) => `Page ${i} `.repeat(50)));
    const runs = Array.from({ length: 6 }, () => extractTextIsolated(big, 'pdf', LIMITS).then(() => 'done', (e: { code: string }) => e.code));
    const outcomes = await Promise.all(runs);
    // 2 running + 2 waiting; the other 2 refused at once.
    expect(outcomes.filter((o) => o === 'OVERLOADED')).toHaveLength(2);
    expect(outcomes.filter((o) => o === 'done')).toHaveLength(4);
    await expect(extractTextIsolated(big, 'pdf', { ...LIMITS, maxPdfPages: 2 })).rejects.toMatchObject({ code: 'INPUT_TOO_LARGE' });
  });

  it('a file that needs more than a thread\'s heap cap fails as DOCUMENT_UNREADABLE and the pool goes on', async () => {
    const small = new ExtractionPool({ threads: 1, memoryMb: 16, maxQueue: 1 });
    try {
      // Millions of tiny paragraphs: the parser's tree outgrows 16 MB.
      const docx = makeDocx(Array.from({ length: 200_000 }, (_, i) => `p${i}`));
      await expect(small.extract(docx, 'docx', { ...LIMITS, maxDocxUncompressedBytes: 200_000_000, maxChars: 10_000_000 })).rejects.toMatchObject({ code: 'DOCUMENT_UNREADABLE' });
      expect(await small.extract(makeDocx(['still here']), 'docx', LIMITS)).toContain('still here');
    } finally {
      await small.close();
    }
  });
});
