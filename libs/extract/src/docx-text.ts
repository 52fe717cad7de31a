import { AppError } from '@lib/shared';
import mammoth from 'mammoth';
import { withDeadline } from './deadline.js';
import type { ExtractLimits } from './extract.js';
import { shortReason } from './short-reason.js';
import { checkZip } from './zip-directory.js';

const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04]; // PK\x03\x04
/** OLE2 compound file: a legacy .doc, or a password-protected .docx (Office encrypts into an OLE container). */
const OLE_MAGIC = [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];

const startsWith = (bytes: Uint8Array, magic: readonly number[]) => magic.every((b, i) => bytes[i] === b);

/**
 * mammoth's raw text (one paragraph per line, blank lines between). The zip is checked first, without mammoth:
 * its central directory must declare no more than maxDocxUncompressedBytes, and each entry must inflate to exactly
 * what it declares.
 */
export async function docxToText(bytes: Uint8Array, limits: ExtractLimits): Promise<string> {
  if (!startsWith(bytes, ZIP_MAGIC)) {
    const reason = startsWith(bytes, OLE_MAGIC)
      ? 'it is a legacy Word (.doc) or password-protected document'
      : 'it is not a zip archive';
    throw new AppError('DOCUMENT_UNREADABLE', `the file is not a readable DOCX (${reason})`, { reason: 'not-docx' });
  }
  await checkZip(bytes, limits.maxDocxUncompressedBytes);
  const raw = await withDeadline(limits.timeoutMs, 'reading the DOCX', async () => {
    try {
      const result = await mammoth.extractRawText({ buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) });
      return result.value;
    } catch (err) {
      throw new AppError('DOCUMENT_UNREADABLE', `the DOCX could not be read: ${shortReason(err)}`, { reason: 'malformed' }, {
        cause: err,
      });
    }
  });
  return raw.replace(/\n{3,}/g, '\n\n').trim();
}
