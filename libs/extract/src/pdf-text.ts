import { AppError } from '@lib/shared';
import { getDocumentProxy } from 'unpdf';
import { withDeadline } from './deadline.js';
import type { ExtractLimits } from './extract.js';
import { shortReason } from './short-reason.js';

type PdfDocument = Awaited<ReturnType<typeof getDocumentProxy>>;

const PAGE_BREAK = '\n\f\n';
const PDF_MAGIC = [0x25, 0x50, 0x44, 0x46, 0x2d]; // %PDF-
/** Readers (Acrobat, pdf.js) accept the header anywhere in the first 1024 bytes; some producers put junk before it. */
const HEADER_SEARCH = 1024;

export function hasPdfHeader(bytes: Uint8Array): boolean {
  const end = Math.min(bytes.length, HEADER_SEARCH) - PDF_MAGIC.length;
  outer: for (let at = 0; at <= end; at++) {
    for (let i = 0; i < PDF_MAGIC.length; i++) if (bytes[at + i] !== PDF_MAGIC[i]) continue outer;
    return true;
  }
  return false;
}

/**
 * The text of each page (pdf.js text items, a line break where pdf.js sees a line end), pages separated by a form
 * feed on a line of its own (as pdftotext marks a page end), empty pages included, so a text offset's page is the
 * number of form feeds before it plus one (pageStarts in @lib/shared). The page count is checked before any page is
 * read, and reading stops as soon as the text passes maxChars.
 */
export async function pdfToText(bytes: Uint8Array, limits: ExtractLimits): Promise<string> {
  if (!hasPdfHeader(bytes)) {
    throw new AppError('DOCUMENT_UNREADABLE', 'the file is not a PDF (it has no %PDF- header)', { reason: 'not-pdf' });
  }
  let doc: PdfDocument | undefined;
  const release = () => {
    const d = doc;
    doc = undefined;
    d?.loadingTask.destroy().catch(() => undefined);
  };
  return withDeadline(
    limits.timeoutMs,
    'reading the PDF',
    async (deadline) => {
      try {
        doc = await openPdf(bytes);
        await yieldToEventLoop();
        deadline.check();
        if (doc.numPages > limits.maxPdfPages) {
          throw new AppError('INPUT_TOO_LARGE', `the PDF has ${doc.numPages} pages; the limit is ${limits.maxPdfPages}`, {
            pages: doc.numPages,
            limit: limits.maxPdfPages,
          });
        }
        const pages: string[] = [];
        let chars = 0;
        for (let n = 1; n <= doc.numPages; n++) {
          const text = await pageText(doc, n);
          await yieldToEventLoop();
          deadline.check();
          pages.push(text);
          chars += (pages.length > 1 ? PAGE_BREAK.length : 0) + text.length; // the length of pages.join(PAGE_BREAK)
          if (chars > limits.maxChars) {
            throw new AppError('INPUT_TOO_LARGE', `the document has more than ${limits.maxChars} characters; the limit is ${limits.maxChars}`, {
              limit: limits.maxChars,
            });
          }
        }
        const joined = pages.join(PAGE_BREAK);
        if (joined.trim() === '') {
          throw new AppError('INPUT_EMPTY', 'the PDF has no text to extract (a scanned PDF holds only images of text)');
        }
        return joined;
      } finally {
        release();
      }
    },
    release,
  );
}

/**
 * pdf.js here runs in this thread (no worker) and chains its steps as promise callbacks, so without a yield no timer
 * (the deadline's, or anyone else's on this event loop) runs until the whole document is done.
 */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function openPdf(bytes: Uint8Array): Promise<PdfDocument> {
  try {
    // A copy: pdf.js may take over (detach) the buffer it is given, and the caller's bytes must stay usable.
    return await getDocumentProxy(new Uint8Array(bytes), { verbosity: 0 });
  } catch (err) {
    const name = (err as { name?: unknown }).name;
    if (name === 'PasswordException') {
      throw new AppError('DOCUMENT_UNREADABLE', 'the PDF is password-protected', { reason: 'encrypted' }, { cause: err });
    }
    throw new AppError('DOCUMENT_UNREADABLE', `the PDF could not be parsed: ${shortReason(err)}`, { reason: 'malformed' }, { cause: err });
  }
}

async function pageText(doc: PdfDocument, pageNumber: number): Promise<string> {
  try {
    const page = await doc.getPage(pageNumber);
    const content = await page.getTextContent();
    page.cleanup();
    let text = '';
    for (const item of content.items) if ('str' in item) text += item.str + (item.hasEOL ? '\n' : '');
    return text.trim();
  } catch (err) {
    throw new AppError('DOCUMENT_UNREADABLE', `page ${pageNumber} of the PDF could not be read: ${shortReason(err)}`, {
      reason: 'malformed',
      page: pageNumber,
    }, { cause: err });
  }
}
