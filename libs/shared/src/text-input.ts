import { AppError } from './errors.js';

/** Share of control characters (other than NUL) above which a text is taken for a binary file. */
export const MAX_CONTROL_SHARE = 0.05;

/** The control characters counted: C0 but TAB, LF, FF and CR; and DEL. (NUL is refused before this.) */
const CONTROL = /[\x01-\x08\x0b\x0e-\x1f\x7f]/;

/**
 * Turns document bytes into text, refusing what is not a text document (see validateDocumentText), and invalid UTF-8.
 * A UTF-8 byte-order mark is dropped.
 */
export function decodeDocument(bytes: Uint8Array, maxChars: number): string {
  if (bytes.includes(0)) throw notText('it contains NUL bytes');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new AppError('INPUT_INVALID_UTF8', 'the document is not valid UTF-8 text');
  }
  return validateDocumentText(text, maxChars);
}

/**
 * Checks a document's text, however it came (a JSON string, a file, extracted from HTML, PDF or DOCX): well-formed
 * UTF-16, not empty, within `maxChars`, and text rather than a binary file. The whole text is read, not a sample:
 * - NUL (U+0000) anywhere: INPUT_NOT_TEXT. No text format uses it, and a JSON `\u0000` escape is how binary data
 *   arrives in a string.
 * - other C0 controls and DEL (not TAB, LF, CR or FF): INPUT_NOT_TEXT when more than 5% of the text. A few are normal
 *   (terminal escapes in a log, a form feed between pages) and reach the encoder as any other character.
 */
export function validateDocumentText(text: string, maxChars: number): string {
  if (!text.isWellFormed()) throw new AppError('INPUT_INVALID_UTF8', 'the document contains unpaired surrogates');
  if (text.trim().length === 0) throw new AppError('INPUT_EMPTY', 'the document is empty or only whitespace');
  if (text.length > maxChars) {
    throw new AppError('INPUT_TOO_LARGE', `the document has ${text.length} characters; the limit is ${maxChars}`, {
      chars: text.length,
      limit: maxChars,
    });
  }
  const nul = text.indexOf('\0');
  if (nul !== -1) throw notText(`it contains NUL characters (the first at offset ${nul})`);
  // Most texts hold none: one regular-expression scan (a few ms for millions of characters) settles it; the count
  // is made only for a text that has some.
  if (!CONTROL.test(text)) return text;
  let control = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12) || c === 127) control++;
  }
  if (control > text.length * MAX_CONTROL_SHARE) {
    throw notText(`${control} of its ${text.length} characters are control characters (the limit is ${MAX_CONTROL_SHARE * 100}%)`);
  }
  return text;
}

function notText(why: string): AppError {
  return new AppError('INPUT_NOT_TEXT', `the document is not text: ${why}`);
}

/** Checks a question or instruction against the limit; returns it trimmed. */
export function validateQuestion(question: string, maxChars: number, what = 'question'): string {
  if (!question.isWellFormed()) throw new AppError('INPUT_INVALID_UTF8', `the ${what} contains unpaired surrogates`);
  const q = question.trim();
  if (q.length === 0) throw new AppError('INPUT_INVALID', `the ${what} is empty`);
  if (q.length > maxChars) {
    throw new AppError('QUESTION_TOO_LONG', `the ${what} has ${q.length} characters; the limit is ${maxChars}`, {
      chars: q.length,
      limit: maxChars,
    });
  }
  return q;
}

/**
 * The start offsets of a text's pages when it marks page ends with form feeds (extracted PDFs, paginated plain text
 * such as RFCs), else undefined: page n starts after the (n-1)th form feed.
 */
export function pageStarts(text: string): number[] | undefined {
  let at = text.indexOf('\f');
  if (at < 0) return undefined;
  const starts = [0];
  while (at >= 0) {
    starts.push(at + 1);
    at = text.indexOf('\f', at + 1);
  }
  return starts;
}
