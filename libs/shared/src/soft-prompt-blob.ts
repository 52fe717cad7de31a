import { createHash } from 'node:crypto';
import { AppError } from './errors.js';
import { fromF16, toF16 } from './f16.js';

/**
 * The soft-prompt blob: one stored vector (or matrix) per chunk. Layout, all little-endian:
 *
 *   magic "E2SP" | version u8 | dtype u8 (0 f32, 1 f16) | ndim u8 | reserved u8 | encoderId length u16 |
 *   encoderId utf-8 | chunk hash (32 bytes) | shape u32 x ndim | data |
 *   checksum: first 16 bytes of sha256 over everything before it
 *
 * The chunk hash is the one the blob's key is named by (`softPromptKey`), under the checksum: a blob moved or copied
 * to another chunk's key fails its check there instead of answering for another text. A blob that fails any check
 * is BLOB_CORRUPT: never decoded as zeros or garbage. Version 1 (no chunk hash) is refused as corrupt, so it is
 * encoded again.
 */
export const SOFT_PROMPT_BLOB_VERSION = 2;
const MAGIC = Buffer.from('E2SP', 'ascii');
const CHECKSUM_BYTES = 16;
const HASH_BYTES = 32;
const DTYPES = { f32: 0, f16: 1 } as const;
export type BlobDtype = keyof typeof DTYPES;

export interface SoftPrompt {
  /** Digest of everything that determines the vector (see encoderId in the model runtime). */
  encoderId: string;
  /** The chunk's content hash (hex sha256, `chunkHash`): the last part of its key. */
  chunkHash: string;
  shape: number[];
  /** Always decoded to f32 for the runtime, whatever the stored dtype. */
  data: Float32Array;
}

export function encodeSoftPrompt(p: SoftPrompt, dtype: BlobDtype = 'f32'): Buffer {
  if (!p.shape.every((d) => Number.isInteger(d) && d >= 0 && d <= 0xffffffff)) {
    throw new AppError('INTERNAL', `soft prompt shape [${p.shape}] is not whole u32 dimensions (this is a bug)`);
  }
  const count = p.shape.reduce((a, b) => a * b, 1);
  if (count !== p.data.length) {
    throw new AppError('INTERNAL', `soft prompt shape [${p.shape}] does not match ${p.data.length} values (this is a bug)`);
  }
  const id = Buffer.from(p.encoderId, 'utf8');
  if (id.length > 0xffff || p.shape.length > 255) throw new AppError('INTERNAL', 'encoder id or rank too large (this is a bug)');
  if (!/^[0-9a-f]{64}$/.test(p.chunkHash)) throw new AppError('INTERNAL', 'soft prompt chunk hash is not 64 hex digits (this is a bug)');
  const shapeAt = 10 + id.length + HASH_BYTES;
  const header = Buffer.alloc(shapeAt + 4 * p.shape.length);
  MAGIC.copy(header, 0);
  header.writeUInt8(SOFT_PROMPT_BLOB_VERSION, 4);
  header.writeUInt8(DTYPES[dtype], 5);
  header.writeUInt8(p.shape.length, 6);
  header.writeUInt16LE(id.length, 8);
  id.copy(header, 10);
  Buffer.from(p.chunkHash, 'hex').copy(header, 10 + id.length);
  p.shape.forEach((d, i) => header.writeUInt32LE(d, shapeAt + 4 * i));
  const data = dtype === 'f32' ? littleEndianBytes(p.data) : littleEndianBytes(toF16(p.data));
  const checksum = createHash('sha256').update(header).update(data).digest().subarray(0, CHECKSUM_BYTES);
  return Buffer.concat([header, data, checksum]);
}

/** What the reader knows the blob must be: the encoder it serves and the chunk hash of the key it was read from. */
export interface SoftPromptExpectation {
  encoderId?: string;
  chunkHash?: string;
}

export function decodeSoftPrompt(blob: Uint8Array, expected: SoftPromptExpectation = {}): SoftPrompt {
  const b = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const corrupt = (why: string) => new AppError('BLOB_CORRUPT', `soft-prompt blob is corrupt: ${why}`);
  if (b.length < 10 + CHECKSUM_BYTES || !b.subarray(0, 4).equals(MAGIC)) throw corrupt('bad magic');
  const version = b.readUInt8(4);
  if (version !== SOFT_PROMPT_BLOB_VERSION) throw corrupt(`unsupported version ${version}`);
  const dtypeCode = b.readUInt8(5);
  const dtype = (Object.keys(DTYPES) as BlobDtype[]).find((k) => DTYPES[k] === dtypeCode);
  if (!dtype) throw corrupt(`unknown dtype ${dtypeCode}`);
  const ndim = b.readUInt8(6);
  const idLen = b.readUInt16LE(8);
  const hashAt = 10 + idLen;
  const shapeAt = hashAt + HASH_BYTES;
  const dataAt = shapeAt + 4 * ndim;
  if (dataAt + CHECKSUM_BYTES > b.length) throw corrupt('truncated header');
  const shape = Array.from({ length: ndim }, (_, i) => b.readUInt32LE(shapeAt + 4 * i));
  const count = shape.reduce((a, c) => a * c, 1);
  const width = dtype === 'f32' ? 4 : 2;
  if (dataAt + count * width + CHECKSUM_BYTES !== b.length) throw corrupt('length does not match shape');
  const body = b.subarray(0, dataAt + count * width);
  const checksum = createHash('sha256').update(body).digest().subarray(0, CHECKSUM_BYTES);
  if (!checksum.equals(b.subarray(body.length))) throw corrupt('checksum mismatch');
  const encoderId = b.toString('utf8', 10, hashAt);
  if (expected.encoderId !== undefined && encoderId !== expected.encoderId) {
    throw corrupt(`written by encoder ${encoderId}, expected ${expected.encoderId}`);
  }
  const chunkHash = b.toString('hex', hashAt, shapeAt);
  if (expected.chunkHash !== undefined && chunkHash !== expected.chunkHash) {
    throw corrupt(`written for chunk ${chunkHash.slice(0, 12)}…, read from the key of chunk ${expected.chunkHash.slice(0, 12)}…`);
  }
  const raw = b.subarray(dataAt, dataAt + count * width);
  const data = dtype === 'f32' ? readF32(raw, count) : fromF16(readU16(raw, count));
  return { encoderId, chunkHash, shape, data };
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndianBytes(a: Float32Array | Uint16Array): Buffer {
  if (!LITTLE_ENDIAN_HOST) throw new AppError('INTERNAL', 'big-endian hosts are not supported');
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function readF32(raw: Buffer, count: number): Float32Array {
  // Copy: the source may not be 4-byte aligned, and the caller owns the result.
  const out = new Float32Array(count);
  new Uint8Array(out.buffer).set(raw);
  return out;
}

function readU16(raw: Buffer, count: number): Uint16Array {
  const out = new Uint16Array(count);
  new Uint8Array(out.buffer).set(raw);
  return out;
}
