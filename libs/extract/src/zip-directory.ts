import { inflateRawSync } from 'node:zlib';
import { AppError } from '@lib/shared';

/** One entry of a zip's central directory. */
export interface ZipEntry {
  name: string;
  /** 0: stored, 8: deflate. */
  method: number;
  flags: number;
  compressedSize: number;
  /** What the central directory declares; checkZipEntries proves the data inflates to no more. */
  uncompressedSize: number;
  localHeaderOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
/** The end record sits in the last 22 bytes plus a comment of at most 65535 bytes. */
const EOCD_SEARCH = EOCD_SIZE + 0xffff;

function corrupt(reason: string): AppError {
  return new AppError('DOCUMENT_UNREADABLE', `the DOCX is not a readable zip archive: ${reason}`, { reason });
}

/**
 * Reads a zip's central directory (zip64 included) without inflating anything. The offsets must be exact (no bytes
 * before the archive), which is what Word and every zip library write, so this view and the one mammoth's zip reader
 * takes of the same bytes agree.
 */
export function readZipDirectory(bytes: Uint8Array): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number) => {
    const value = view.getBigUint64(at, true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corrupt('a zip64 size or offset is out of range');
    return Number(value);
  };

  let eocd = -1;
  for (let at = bytes.length - EOCD_SIZE; at >= Math.max(0, bytes.length - EOCD_SEARCH); at--) {
    if (u32(at) === EOCD_SIGNATURE) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw corrupt('no end of central directory record');

  let entryCount = u16(eocd + 10);
  let centralSize = u32(eocd + 12);
  let centralOffset = u32(eocd + 16);
  let centralEnd = eocd;
  const locator = eocd - 20;
  if (locator >= 0 && u32(locator) === ZIP64_LOCATOR_SIGNATURE) {
    const zip64 = u64(locator + 8);
    if (zip64 + 56 > locator || u32(zip64) !== ZIP64_EOCD_SIGNATURE) throw corrupt('bad zip64 end record');
    entryCount = u64(zip64 + 32);
    centralSize = u64(zip64 + 40);
    centralOffset = u64(zip64 + 48);
    centralEnd = zip64;
  }
  if (centralOffset + centralSize !== centralEnd) throw corrupt('the central directory is not where the end record says');

  const entries: ZipEntry[] = [];
  let at = centralOffset;
  while (at < centralEnd) {
    if (at + 46 > centralEnd || u32(at) !== CENTRAL_SIGNATURE) throw corrupt('bad central directory header');
    const nameLength = u16(at + 28);
    const extraLength = u16(at + 30);
    const commentLength = u16(at + 32);
    const next = at + 46 + nameLength + extraLength + commentLength;
    if (next > centralEnd) throw corrupt('a central directory header runs past its end');
    const flags = u16(at + 8);
    const name = new TextDecoder(flags & 0x0800 ? 'utf-8' : 'latin1').decode(bytes.subarray(at + 46, at + 46 + nameLength));
    const entry: ZipEntry = {
      // Names reach error messages; a hostile archive may make them 64 KB long.
      name: name.length > 100 ? `${name.slice(0, 100)}…` : name,
      method: u16(at + 10),
      flags,
      compressedSize: u32(at + 20),
      uncompressedSize: u32(at + 24),
      localHeaderOffset: u32(at + 42),
    };
    readZip64Extra(entry, at + 46 + nameLength, extraLength, u16, u64);
    entries.push(entry);
    at = next;
  }
  if (entries.length !== entryCount) throw corrupt(`the end record counts ${entryCount} entries, the directory has ${entries.length}`);
  return entries;
}

/** Fields saturated at 0xffffffff are in the zip64 extra field (id 1), in this order, only those saturated. */
function readZip64Extra(
  entry: ZipEntry,
  start: number,
  length: number,
  u16: (at: number) => number,
  u64: (at: number) => number,
): void {
  const wanted = (['uncompressedSize', 'compressedSize', 'localHeaderOffset'] as const).filter((k) => entry[k] === 0xffffffff);
  if (wanted.length === 0) return;
  for (let at = start; at + 4 <= start + length; ) {
    const id = u16(at);
    const size = u16(at + 2);
    if (id === 0x0001) {
      if (size < wanted.length * 8) throw corrupt(`the zip64 field of ${entry.name} is too short`);
      wanted.forEach((key, i) => (entry[key] = u64(at + 4 + 8 * i)));
      return;
    }
    at += 4 + size;
  }
  throw corrupt(`${entry.name} has saturated sizes and no zip64 field`);
}

/**
 * Refuses a zip that would inflate to more than `maxUncompressedBytes`: first by what the central directory declares
 * (a 2 GB entry is refused without inflating a byte), then by inflating each entry with its declared size as a hard
 * cap, because the declared sizes can lie and mammoth's zip reader (JSZip) checks them only after inflating all of it.
 * An entry that inflates to anything but its declared size is DOCUMENT_UNREADABLE.
 */
export function checkZipEntries(bytes: Uint8Array, entries: readonly ZipEntry[], maxUncompressedBytes: number): void {
  const declared = entries.reduce((n, e) => n + e.uncompressedSize, 0);
  if (declared > maxUncompressedBytes) {
    throw new AppError(
      'INPUT_TOO_LARGE',
      `the DOCX would unpack to ${declared} bytes; the limit is ${maxUncompressedBytes}`,
      { uncompressedBytes: declared, limit: maxUncompressedBytes },
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const entry of entries) {
    if (entry.flags & 0x0001) throw corrupt(`${entry.name} is encrypted`);
    const local = entry.localHeaderOffset;
    if (local + 30 > bytes.length || view.getUint32(local, true) !== LOCAL_SIGNATURE) {
      throw corrupt(`bad local header for ${entry.name}`);
    }
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const dataEnd = dataStart + entry.compressedSize;
    if (dataEnd > bytes.length) throw corrupt(`${entry.name} runs past the end of the file`);
    const data = bytes.subarray(dataStart, dataEnd);
    let actual: number;
    if (entry.method === 0) {
      actual = data.length;
    } else if (entry.method === 8) {
      try {
        // The cap makes a lying entry fail after at most its declared size, never after gigabytes.
        actual = inflateRawSync(data, { maxOutputLength: Math.max(1, entry.uncompressedSize) }).length;
      } catch (err) {
        if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
          throw corrupt(`${entry.name} unpacks to more than the ${entry.uncompressedSize} bytes it declares`);
        }
        throw corrupt(`${entry.name} does not inflate`);
      }
    } else {
      throw corrupt(`${entry.name} uses compression method ${entry.method}`);
    }
    if (actual !== entry.uncompressedSize) {
      throw corrupt(`${entry.name} unpacks to ${actual} bytes, not the ${entry.uncompressedSize} it declares`);
    }
  }
}
