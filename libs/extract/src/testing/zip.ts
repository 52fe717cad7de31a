import { deflateRawSync } from 'node:zlib';

/** One file in a zip built by makeZip. */
export interface ZipEntryInput {
  /** Path inside the archive, forward slashes. */
  name: string;
  /** The entry's content; strings are written as UTF-8. */
  data: Uint8Array | string;
  /** Compression method; deflate unless told. */
  method?: 'deflate' | 'store';
  /**
   * The uncompressed size the headers declare, when it should not be the real one (a zip bomb's lie, or a
   * truncated entry). Must fit in 32 bits.
   */
  declaredUncompressedSize?: number;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3, as zip uses it). Node 20's zlib has no crc32, so it is computed here. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export interface MakeZipOptions {
  /**
   * Write zip64 records: every size and offset saturated (0xffffffff) with the real value in a zip64 extra field,
   * and a zip64 end record and locator before the classic end record, as some writers do for streamed output.
   */
  zip64?: boolean;
}

/**
 * A minimal zip writer for test fixtures: no data descriptors, names flagged UTF-8, DOS date 1980-01-01, zip64 on
 * request. `declaredUncompressedSize` lets a fixture lie about an entry's size.
 * Hand-written rather than fflate's zipSync or yazl (issue 19): the zip-bomb fixtures need headers whose declared
 * size lies, and a writer library writes the true sizes it computed.
 */
export function makeZip(entries: readonly ZipEntryInput[], options: MakeZipOptions = {}): Uint8Array {
  const zip64 = options.zip64 ?? false;
  const utf8 = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const entry of entries) {
    const name = utf8.encode(entry.name);
    const data = typeof entry.data === 'string' ? utf8.encode(entry.data) : entry.data;
    const method = entry.method === 'store' ? 0 : 8;
    const stored = method === 0 ? data : new Uint8Array(deflateRawSync(data));
    const uncompressed = entry.declaredUncompressedSize ?? data.length;
    const limit = zip64 ? Number.MAX_SAFE_INTEGER : 0xffffffff;
    if (!Number.isSafeInteger(uncompressed) || uncompressed < 0 || uncompressed > limit) {
      throw new RangeError(`declaredUncompressedSize ${uncompressed} does not fit${zip64 ? '' : ' in 32 bits (use zip64)'}`);
    }
    const crc = crc32(data);
    const size32 = (n: number) => (zip64 ? 0xffffffff : n);

    // Local header: zip64 extra holds the uncompressed then the compressed size.
    const localExtra = zip64 ? zip64Extra([uncompressed, stored.length]) : new Uint8Array(0);
    const local = new Uint8Array(30 + name.length + localExtra.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, 0x04034b50, true);
    lv.setUint16(4, zip64 ? 45 : 20, true); // version needed: 2.0 (deflate), 4.5 (zip64)
    lv.setUint16(6, 0x0800, true); // general purpose flags: names are UTF-8
    lv.setUint16(8, method, true);
    lv.setUint16(10, 0, true); // DOS time 00:00:00
    lv.setUint16(12, 0x21, true); // DOS date 1980-01-01
    lv.setUint32(14, crc, true);
    lv.setUint32(18, size32(stored.length), true);
    lv.setUint32(22, size32(uncompressed), true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, localExtra.length, true);
    local.set(name, 30);
    local.set(localExtra, 30 + name.length);

    // Central header: zip64 extra holds uncompressed size, compressed size, local header offset.
    const centralExtra = zip64 ? zip64Extra([uncompressed, stored.length, offset]) : new Uint8Array(0);
    const central = new Uint8Array(46 + name.length + centralExtra.length);
    const cv = new DataView(central.buffer);
    cv.setUint32(0, 0x02014b50, true);
    cv.setUint16(4, zip64 ? 45 : 20, true); // version made by
    cv.setUint16(6, zip64 ? 45 : 20, true); // version needed
    cv.setUint16(8, 0x0800, true);
    cv.setUint16(10, method, true);
    cv.setUint16(12, 0, true);
    cv.setUint16(14, 0x21, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, size32(stored.length), true);
    cv.setUint32(24, size32(uncompressed), true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, centralExtra.length, true);
    // comment length, disk number, internal and external attributes: all zero
    cv.setUint32(42, size32(offset), true);
    central.set(name, 46);
    central.set(centralExtra, 46 + name.length);

    locals.push(local, stored);
    centrals.push(central);
    offset += local.length + stored.length;
  }
  const centralSize = centrals.reduce((n, c) => n + c.length, 0);
  const tail: Uint8Array[] = [];
  if (zip64) {
    const record = new Uint8Array(56);
    const rv = new DataView(record.buffer);
    rv.setUint32(0, 0x06064b50, true);
    rv.setBigUint64(4, 44n, true); // size of the rest of this record
    rv.setUint16(12, 45, true);
    rv.setUint16(14, 45, true);
    // disk numbers at 16 and 20: zero
    rv.setBigUint64(24, BigInt(entries.length), true);
    rv.setBigUint64(32, BigInt(entries.length), true);
    rv.setBigUint64(40, BigInt(centralSize), true);
    rv.setBigUint64(48, BigInt(offset), true);
    const locator = new Uint8Array(20);
    const xv = new DataView(locator.buffer);
    xv.setUint32(0, 0x07064b50, true);
    xv.setBigUint64(8, BigInt(offset + centralSize), true);
    xv.setUint32(16, 1, true); // total disks
    tail.push(record, locator);
  }
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, zip64 ? 0xffff : entries.length, true);
  ev.setUint16(10, zip64 ? 0xffff : entries.length, true);
  ev.setUint32(12, zip64 ? 0xffffffff : centralSize, true);
  ev.setUint32(16, zip64 ? 0xffffffff : offset, true);
  return concat([...locals, ...centrals, ...tail, end]);
}

function zip64Extra(values: readonly number[]): Uint8Array {
  const extra = new Uint8Array(4 + 8 * values.length);
  const v = new DataView(extra.buffer);
  v.setUint16(0, 0x0001, true);
  v.setUint16(2, 8 * values.length, true);
  values.forEach((n, i) => v.setBigUint64(4 + 8 * i, BigInt(n), true));
  return extra;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
