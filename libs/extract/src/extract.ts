import { AppError, assertNever, decodeDocument, validateDocumentText } from '@lib/shared';
import type { DocumentKind } from './document-kind.js';
import { docxToText } from './docx-text.js';
import { htmlToText } from './html-text.js';
import { pdfToText } from './pdf-text.js';
import { shortReason } from './short-reason.js';

/** Bounds on the work one document may cause. */
export interface ExtractLimits {
  /** The most characters the extracted text may have (INPUT_TOO_LARGE beyond). */
  maxChars: number;
  /** The most pages a PDF may have; checked before any page is read. */
  maxPdfPages: number;
  /** The most bytes a DOCX's zip entries may declare, all together, uncompressed; checked before mammoth runs. */
  maxDocxUncompressedBytes: number;
  /** How long PDF or DOCX parsing may take (DOCUMENT_UNREADABLE beyond). */
  timeoutMs: number;
}

/**
 * The text of a document. txt and md: UTF-8 as is (decodeDocument). html: the visible text. pdf: the text layer,
 * pages joined with blank lines. docx: mammoth's raw text. A file that does not parse is DOCUMENT_UNREADABLE; the
 * result then passes validateDocumentText (INPUT_EMPTY, INPUT_TOO_LARGE, INPUT_NOT_TEXT).
 *
 * The timeout interrupts PDF and DOCX parsing between their asynchronous steps; HTML parsing is synchronous and
 * linear in the input, so the upload size limit is what bounds it.
 */
export async function extractText(bytes: Uint8Array, kind: DocumentKind, limits: ExtractLimits): Promise<string> {
  checkLimits(limits);
  if (bytes.length === 0) throw new AppError('INPUT_EMPTY', 'the document is empty');
  switch (kind) {
    case 'txt':
    case 'md':
      return decodeDocument(bytes, limits.maxChars);
    case 'html':
      return validateDocumentText(htmlText(bytes), limits.maxChars);
    case 'pdf':
      return validateDocumentText(await pdfToText(bytes, limits), limits.maxChars);
    case 'docx':
      return validateDocumentText(await docxToText(bytes, limits), limits.maxChars);
    default:
      return assertNever(kind, 'document kind');
  }
}

function htmlText(bytes: Uint8Array): string {
  // The markup may be several times longer than its text, so only the extracted text is held to maxChars.
  const html = decodeDocument(bytes, Number.POSITIVE_INFINITY);
  try {
    return htmlToText(html);
  } catch (err) {
    throw new AppError('DOCUMENT_UNREADABLE', `the HTML could not be parsed: ${shortReason(err)}`, { reason: 'malformed' }, {
      cause: err,
    });
  }
}

function checkLimits(limits: ExtractLimits): void {
  for (const key of ['maxChars', 'maxPdfPages', 'maxDocxUncompressedBytes', 'timeoutMs'] as const) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new AppError('INTERNAL', `ExtractLimits.${key} must be a positive integer, got ${value} (this is a bug)`);
    }
  }
}
