import yauzl from 'yauzl';
import { AppError } from '@lib/shared';

function corrupt(reason: string): AppError {
  return new AppError('DOCUMENT_UNREADABLE', `the DOCX is not a readable zip archive: ${reason}`, { reason });
}

/** Names reach error messages; a hostile archive may make them 64 KB long. */
const shortName = (name: string) => (name.length > 100 ? `${name.slice(0, 100)}…` : name);

/**
 * Refuses a zip that would inflate to more than `maxUncompressedBytes`, before mammoth (whose zip reader, JSZip,
 * checks sizes only after inflating everything) sees it. yauzl reads the central directory (zip64 included) without
 * inflating anything, so the sum of the declared sizes is checked first (a 2 GB entry is refused without inflating a
 * byte); then each entry is inflated and counted, with yauzl's validateEntrySizes failing the stream as soon as it
 * passes its declared size, because the declared sizes can lie. An entry that inflates to anything but its declared
 * size is DOCUMENT_UNREADABLE. The data is counted and dropped, never kept.
 */
export async function checkZip(bytes: Uint8Array, maxUncompressedBytes: number): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromBufferPromise(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), {
      validateEntrySizes: true,
      autoClose: false,
    });
  } catch (err) {
    throw corrupt((err as Error).message);
  }
  try {
    const entries: yauzl.Entry[] = [];
    try {
      for await (const entry of zip.eachEntry()) entries.push(entry);
    } catch (err) {
      throw corrupt((err as Error).message);
    }
    const declared = entries.reduce((n, e) => n + e.uncompressedSize, 0);
    if (declared > maxUncompressedBytes) {
      throw new AppError(
        'INPUT_TOO_LARGE',
        `the DOCX would unpack to ${declared} bytes; the limit is ${maxUncompressedBytes}`,
        { uncompressedBytes: declared, limit: maxUncompressedBytes },
      );
    }
    for (const entry of entries) await checkEntry(zip, entry);
  } finally {
    zip.close();
  }
}

async function checkEntry(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<void> {
  const name = shortName(entry.fileName);
  if (entry.isEncrypted()) throw corrupt(`${name} is encrypted`);
  if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
    throw corrupt(`${name} uses compression method ${entry.compressionMethod}`);
  }
  try {
    const stream = await zip.openReadStreamPromise(entry);
    for await (const chunk of stream) void chunk; // yauzl counts the bytes and fails the stream on a size mismatch
  } catch (err) {
    const message = (err as Error).message;
    if (message.startsWith('too many bytes')) {
      throw corrupt(`${name} unpacks to more than the ${entry.uncompressedSize} bytes it declares`);
    }
    const short = /^not enough bytes in the stream\. expected \d+\. got only (\d+)/.exec(message);
    if (short) throw corrupt(`${name} unpacks to ${short[1]} bytes, not the ${entry.uncompressedSize} it declares`);
    throw corrupt(`${name}: ${message}`);
  }
}
