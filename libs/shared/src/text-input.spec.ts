import { describe, expect, it } from 'vitest';
import { AppError, type ErrorCode } from './errors.js';
import { decodeDocument, pageStarts, validateDocumentText, validateQuestion } from './text-input.js';
import { codeOf } from '../test/error-code.js';

const utf8 = (s: string) => new TextEncoder().encode(s);
const bytes = (...b: number[]) => new Uint8Array(b);
const LIMIT = 1000;

describe('decodeDocument', () => {
  it('returns plain text unchanged (no trimming)', () => {
    const text = '  Hello, world.\r\n\tSecond line.\n\n';
    expect(decodeDocument(utf8(text), LIMIT)).toBe(text);
  });

  it('passes CJK, emoji and combining marks through', () => {
    const text = '日本語のテキスト。中文！한국어 👍🏽 👨‍👩‍👧 🇫🇷 e\u0301 𝔘𝔫𝔦';
    expect(decodeDocument(utf8(text), LIMIT)).toBe(text);
  });

  it('drops a UTF-8 byte-order mark', () => {
    expect(decodeDocument(bytes(0xef, 0xbb, 0xbf, ...utf8('hi there')), LIMIT)).toBe('hi there');
  });

  it('keeps a second BOM (only the leading one is a byte-order mark)', () => {
    expect(decodeDocument(bytes(0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf, ...utf8('hi')), LIMIT)).toBe('\ufeffhi');
  });

  it('rejects NUL bytes as INPUT_NOT_TEXT', () => {
    expect(codeOf(() => decodeDocument(bytes(0x41, 0x00, 0x42), LIMIT))).toBe('INPUT_NOT_TEXT');
    expect(codeOf(() => decodeDocument(utf8('a long text document, then one NUL\u0000'), LIMIT))).toBe('INPUT_NOT_TEXT');
  });

  it('rejects UTF-16 text (it is full of NUL bytes) as INPUT_NOT_TEXT', () => {
    expect(codeOf(() => decodeDocument(new Uint8Array(Buffer.from('\ufeffhello world', 'utf16le')), LIMIT))).toBe(
      'INPUT_NOT_TEXT',
    );
  });

  it.each([
    ['invalid start bytes ff fe', [0xff, 0xfe, 0x41]],
    ['overlong "/" c0 af', [0xc0, 0xaf]],
    ['overlong 3-byte "/" e0 80 af', [0xe0, 0x80, 0xaf]],
    ['truncated 3-byte sequence at the end', [0x41, 0xe6, 0x97]],
    ['truncated 4-byte sequence mid-text', [0xf0, 0x9f, 0x98, 0x41]],
    ['lone continuation byte', [0x41, 0x80, 0x42]],
    ['UTF-8-encoded surrogate ed a0 80', [0xed, 0xa0, 0x80]],
    ['code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['latin-1 "café"', [0x63, 0x61, 0x66, 0xe9]],
  ])('rejects invalid UTF-8 as INPUT_INVALID_UTF8: %s', (_what, b) => {
    expect(codeOf(() => decodeDocument(bytes(...b), LIMIT))).toBe('INPUT_INVALID_UTF8');
  });

  it.each([
    ['empty', ''],
    ['spaces', '     '],
    ['mixed whitespace', ' \t\r\n\n \u00a0\u3000\u2028 '],
  ])('rejects whitespace-only text as INPUT_EMPTY: %s', (_what, text) => {
    expect(codeOf(() => decodeDocument(utf8(text), LIMIT))).toBe('INPUT_EMPTY');
  });

  it('rejects a BOM-only file as INPUT_EMPTY', () => {
    expect(codeOf(() => decodeDocument(bytes(0xef, 0xbb, 0xbf), LIMIT))).toBe('INPUT_EMPTY');
  });

  it('rejects text over the limit as INPUT_TOO_LARGE, with the numbers in details', () => {
    expect(decodeDocument(utf8('x'.repeat(LIMIT)), LIMIT)).toHaveLength(LIMIT);
    let err: unknown;
    try {
      decodeDocument(utf8('x'.repeat(LIMIT + 1)), LIMIT);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('INPUT_TOO_LARGE');
    expect((err as AppError).details).toEqual({ chars: LIMIT + 1, limit: LIMIT });
  });

  it('rejects text that is mostly control characters as INPUT_NOT_TEXT', () => {
    const binaryish = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? 0x01 : 0x41 + (i % 26)));
    expect(codeOf(() => decodeDocument(bytes(...binaryish), LIMIT))).toBe('INPUT_NOT_TEXT');
    expect(codeOf(() => decodeDocument(bytes(0x1b, 0x1b, 0x1b, 0x1b), LIMIT))).toBe('INPUT_NOT_TEXT');
    expect(codeOf(() => decodeDocument(utf8('\u007f'.repeat(10) + 'abc'), LIMIT))).toBe('INPUT_NOT_TEXT');
  });

  it('allows a few control characters (5% or less) and any amount of tab, newline, CR, form feed', () => {
    expect(decodeDocument(utf8('a'.repeat(95) + '\u0007'.repeat(5)), LIMIT)).toHaveLength(100);
    expect(codeOf(() => decodeDocument(utf8('a'.repeat(94) + '\u0007'.repeat(6)), LIMIT))).toBe('INPUT_NOT_TEXT');
    const layout = 'col\tcol\tcol\r\n\f\n\t\t\tx';
    expect(decodeDocument(utf8(layout), LIMIT)).toBe(layout);
  });
});

describe('validateDocumentText', () => {
  it('applies the same checks to already-decoded text', () => {
    expect(validateDocumentText('plain text', LIMIT)).toBe('plain text');
    expect(codeOf(() => validateDocumentText(' \n ', LIMIT))).toBe('INPUT_EMPTY');
    expect(codeOf(() => validateDocumentText('x'.repeat(LIMIT + 1), LIMIT))).toBe('INPUT_TOO_LARGE');
    expect(codeOf(() => validateDocumentText('\u0001\u0002\u0003abc', LIMIT))).toBe('INPUT_NOT_TEXT');
  });

  it('refuses one NUL anywhere in the text, however long (issue 18: JSON text is checked as files are)', () => {
    const long = 'plain words '.repeat(20_000); // 240,000 characters, past the 65,536 the check used to sample
    expect(codeOf(() => validateDocumentText(`${'a'.repeat(130)}\u0000`, 4_000_000))).toBe('INPUT_NOT_TEXT');
    expect(codeOf(() => validateDocumentText(`${'x'.repeat(65_536)}${'\u0000'.repeat(100_000)}`, 4_000_000))).toBe('INPUT_NOT_TEXT');
    expect(codeOf(() => validateDocumentText(`${long}\u0000`, 4_000_000))).toBe('INPUT_NOT_TEXT');
    expect(validateDocumentText(long, 4_000_000)).toBe(long);
  });

  it('counts other control characters over the whole text, not a prefix: over 5% is INPUT_NOT_TEXT', () => {
    const clean = 'y'.repeat(65_536);
    // 64k of clean text, then 10,000 control characters: 13% of the whole, all past the old sample.
    expect(codeOf(() => validateDocumentText(clean + '\u0001'.repeat(10_000), 4_000_000))).toBe('INPUT_NOT_TEXT');
    // 3% terminal escapes spread through the text are text (a coloured log), wherever they are.
    const log = Array.from({ length: 3_000 }, () => `\u001b[1m${'w'.repeat(96)}`).join('');
    expect(validateDocumentText(log, 4_000_000)).toBe(log);
  });

  it('rejects unpaired surrogates as INPUT_INVALID_UTF8', () => {
    expect(codeOf(() => validateDocumentText('abc\ud800def', LIMIT))).toBe('INPUT_INVALID_UTF8');
    expect(codeOf(() => validateDocumentText('abc\udc00', LIMIT))).toBe('INPUT_INVALID_UTF8');
    expect(validateDocumentText('abc\ud83d\ude42', LIMIT)).toBe('abc🙂');
  });
});

describe('validateQuestion', () => {
  it('returns the question trimmed', () => {
    expect(validateQuestion('  What is E2LLM?\n', 100)).toBe('What is E2LLM?');
  });

  it('counts the limit after trimming', () => {
    expect(validateQuestion('   abc   ', 3)).toBe('abc');
  });

  it('rejects a question over the limit as QUESTION_TOO_LONG, with the numbers in details', () => {
    let err: unknown;
    try {
      validateQuestion('abcd', 3);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('QUESTION_TOO_LONG');
    expect((err as AppError).details).toEqual({ chars: 4, limit: 3 });
  });

  it.each(['', '   ', '\n\t '])('rejects an empty question as INPUT_INVALID: %j', (q) => {
    expect(codeOf(() => validateQuestion(q, 100))).toBe('INPUT_INVALID');
  });

  it('names what was checked in the message', () => {
    let message = '';
    try {
      validateQuestion('', 100, 'instruction');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain('instruction');
  });

  it('rejects unpaired surrogates as INPUT_INVALID_UTF8', () => {
    expect(codeOf(() => validateQuestion('why\ud800?', 100))).toBe('INPUT_INVALID_UTF8');
  });

  it('passes CJK and emoji', () => {
    expect(validateQuestion(' 这是什么？🙂 ', 100)).toBe('这是什么？🙂');
  });
});

describe('pageStarts', () => {
  it('gives the start of each page of a text with form feeds, and nothing for a text without', () => {
    expect(pageStarts('one\n\f\ntwo\n\f\n\n\f\nfour')).toEqual([0, 5, 11, 14]);
    expect(pageStarts('no pages here')).toBeUndefined();
  });
});
