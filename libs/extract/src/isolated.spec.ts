import { describe, expect, it } from 'vitest';
import { extractText } from './extract.js';
import { extractTextIsolated } from './isolated.js';
import { makeDocx, makePdf } from './testing/index.js';

const LIMITS = { maxChars: 1_000_000, maxPdfPages: 1000, maxDocxUncompressedBytes: 10_000_000, timeoutMs: 10_000 };

describe('extractTextIsolated (worker thread)', () => {
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
});
