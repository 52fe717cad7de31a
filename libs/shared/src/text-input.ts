import { AppError } from './errors.js';

/**
 * Turns document bytes into text, refusing what is not a text document: NUL bytes or many control characters
 * (a binary file), invalid UTF-8, and empty or whitespace-only text. A UTF-8 byte-order mark is dropped.
 */
export function decodeDocument(bytes: Uint8Array, maxChars: number): string {
  if (bytes.includes(0)) throw new AppError('INPUT_NOT_TEXT', 'the file is not a text document (it contains NUL bytes)');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new AppError('INPUT_INVALID_UTF8', 'the document is not valid UTF-8 text');
  }
  return validateDocumentText(text, maxChars);
}

/** Checks text already decoded (e.g. from a JSON body). */
export function validateDocumentText(text: string, maxChars: number): string {
  if (!text.isWellFormed()) throw new AppError('INPUT_INVALID_UTF8', 'the document contains unpaired surrogates');
  if (text.trim().length === 0) throw new AppError('INPUT_EMPTY', 'the document is empty or only whitespace');
  if (text.length > maxChars) {
    throw new AppError('INPUT_TOO_LARGE', `the document has ${text.length} characters; the limit is ${maxChars}`, {
      chars: text.length,
      limit: maxChars,
    });
  }
  const sample = text.slice(0, 65536);
  let control = 0;
  for (let i = 0; i < sample.length; i++) {
    const c = sample.charCodeAt(i);
    if ((c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12) || c === 127) control++;
  }
  if (control > sample.length * 0.05) {
    throw new AppError('INPUT_NOT_TEXT', 'the file is not a text document (too many control characters)');
  }
  return text;
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
