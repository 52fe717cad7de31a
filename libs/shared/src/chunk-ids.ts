import { AppError } from './errors.js';

/**
 * The encoder ids of a document's chunks, as the API's planner measured them, stored once beside the source so the
 * encoder workers do not tokenize the text a second time (at 128k tokens that was as much CPU as the API's own cut).
 * Binary, little-endian: "E2CI", version 1, the tokenizer's identity (one length byte, UTF-8), the chunk count, each
 * chunk's id count, then every id, chunks in document order. A worker whose tokenizer has another identity, or a
 * blob that fails these checks, tokenizes the chunks itself: the ids are a cache of the cut, never trusted blindly.
 */
const MAGIC = 0x49433245; // "E2CI" read as a little-endian u32

export interface ChunkIds {
  /** DocumentPlanner.tokenizerId of the planner that measured them. */
  tokenizer: string;
  /** Each chunk's ids, by chunk index. */
  chunks: readonly (readonly number[] | Uint32Array)[];
}

export function encodeChunkIds({ tokenizer, chunks }: ChunkIds): Buffer {
  const name = Buffer.from(tokenizer, 'utf8');
  if (name.length > 255) throw new AppError('INTERNAL', 'tokenizer identity too long (this is a bug)');
  const total = chunks.reduce((a, c) => a + c.length, 0);
  const head = 4 + 1 + 1 + name.length;
  const pad = (4 - (head % 4)) % 4;
  const buf = Buffer.alloc(head + pad + 4 * (1 + chunks.length + total));
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt8(1, 4);
  buf.writeUInt8(name.length, 5);
  name.copy(buf, 6);
  let o = head + pad;
  buf.writeUInt32LE(chunks.length, o);
  o += 4;
  for (const c of chunks) {
    buf.writeUInt32LE(c.length, o);
    o += 4;
  }
  const ids = new Uint32Array(buf.buffer, buf.byteOffset + o, total);
  let at = 0;
  for (const c of chunks) {
    ids.set(c, at);
    at += c.length;
  }
  return buf;
}

/** The ids of a blob written by encodeChunkIds; undefined when it is not one (truncated, another format). */
export function decodeChunkIds(buf: Buffer): { tokenizer: string; chunk: (index: number) => Uint32Array | undefined; count: number } | undefined {
  if (buf.length < 6 || buf.readUInt32LE(0) !== MAGIC || buf.readUInt8(4) !== 1) return undefined;
  const nameLength = buf.readUInt8(5);
  const head = 6 + nameLength;
  const start = head + ((4 - (head % 4)) % 4);
  if (buf.length < start + 4) return undefined;
  const tokenizer = buf.toString('utf8', 6, head);
  const count = buf.readUInt32LE(start);
  if (buf.length < start + 4 + 4 * count) return undefined;
  // A copy aligned for Uint32Array (a Buffer from the store may sit at any offset of its pool).
  const words = new Uint32Array((buf.length - start) >> 2);
  Buffer.from(words.buffer).set(buf.subarray(start, start + words.length * 4));
  const lengths = words.subarray(1, 1 + count);
  const offsets = new Float64Array(count + 1);
  for (let i = 0; i < count; i++) offsets[i + 1] = offsets[i]! + lengths[i]!;
  if (words.length !== 1 + count + offsets[count]!) return undefined;
  const ids = words.subarray(1 + count);
  return { tokenizer, count, chunk: (i) => (i >= 0 && i < count ? ids.subarray(offsets[i]!, offsets[i + 1]!) : undefined) };
}
