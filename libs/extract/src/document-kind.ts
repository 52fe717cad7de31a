import { AppError } from '@lib/shared';

/** The document types text is extracted from. */
export const DOCUMENT_KINDS = ['txt', 'md', 'html', 'pdf', 'docx'] as const;
export type DocumentKind = (typeof DOCUMENT_KINDS)[number];

const BY_EXTENSION: Readonly<Record<string, DocumentKind>> = {
  txt: 'txt',
  text: 'txt',
  md: 'md',
  markdown: 'md',
  html: 'html',
  htm: 'html',
  xhtml: 'html',
  pdf: 'pdf',
  docx: 'docx',
};

const BY_MIME: Readonly<Record<string, DocumentKind>> = {
  'text/plain': 'txt',
  'text/markdown': 'md',
  'text/x-markdown': 'md',
  'text/html': 'html',
  'application/xhtml+xml': 'html',
  'application/pdf': 'pdf',
  'application/x-pdf': 'pdf',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
};

/** MIME types that say nothing about the content: clients send them for any file they cannot name. */
const GENERIC_MIME = new Set(['application/octet-stream', 'binary/octet-stream', 'application/unknown', 'application/x-unknown']);

/**
 * The kind of an uploaded document, from its file name's extension and its declared MIME type. A known extension
 * wins over the MIME type, because clients label files inconsistently (a `.md` file often arrives as `text/plain` or
 * `application/octet-stream`); the MIME type decides only when the name has no known extension. The bytes themselves
 * are checked by extractText (a `.pdf` must start with `%PDF-`, a `.docx` must be a zip).
 * Anything else is UNSUPPORTED_MEDIA_TYPE.
 */
export function documentKind(fileName: string | undefined, mimeType: string | undefined): DocumentKind {
  const extension = fileExtension(fileName);
  const mime = mimeType?.split(';')[0]!.trim().toLowerCase() ?? '';
  const kind = (extension ? BY_EXTENSION[extension] : undefined) ?? (GENERIC_MIME.has(mime) ? undefined : BY_MIME[mime]);
  if (kind === undefined) {
    const what = [extension ? `extension .${extension}` : 'no file extension', mime ? `MIME type ${mime}` : 'no MIME type'];
    throw new AppError(
      'UNSUPPORTED_MEDIA_TYPE',
      `unsupported document type (${what.join(', ')}); supported: .txt, .md, .html, .pdf, .docx`,
      { ...(extension ? { extension } : {}), ...(mime ? { mimeType: mime } : {}), supported: [...DOCUMENT_KINDS] },
    );
  }
  return kind;
}

/** The lower-cased extension of the name's last path segment ('' when none; a leading dot alone is not one). */
function fileExtension(fileName: string | undefined): string {
  // Browsers and Windows clients may send a path ("C:\\fakepath\\a.pdf"); only the last segment names the file.
  const base = (fileName ?? '').trim().split(/[\\/]/).pop() ?? '';
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
}
