import { crc32 } from 'node:zlib';
import { AppError } from '@lib/shared';

/**
 * `torch.save(tensor)` of a float32 CPU tensor, byte for byte in the layout PyTorch's zip serialization uses, so an
 * engine that reads a prompt with `torch.load(io.BytesIO(payload), weights_only=True)` (vLLM's `prompt_embeds`) gets
 * the tensor back. The archive is an uncompressed zip of three records under one folder:
 *
 *   archive/data.pkl  pickle protocol 2: torch._utils._rebuild_tensor_v2(storage, 0, shape, stride, False, OrderedDict())
 *                     where storage is the persistent id ('storage', torch.FloatStorage, '0', 'cpu', numel)
 *   archive/data/0    the values, little-endian float32, contiguous (row-major)
 *   archive/version   "3\n"
 *
 * As torch does, each record's data starts on a 64-byte boundary (padding in the local header's extra field), so a
 * reader that maps the storage in place finds it aligned. Only what the weights_only unpickler allows is written.
 */
export function torchSaveFloat32(data: Float32Array, shape: readonly number[]): Buffer {
  const numel = shape.reduce((a, b) => a * b, 1);
  if (shape.some((d) => !Number.isInteger(d) || d < 0) || numel !== data.length) {
    throw new AppError('INTERNAL', `torchSaveFloat32: shape [${shape.join(', ')}] does not hold ${data.length} values (this is a bug)`);
  }
  const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const values = Buffer.alloc(data.length * 4);
  for (let i = 0; i < data.length; i++) values.writeFloatLE(data[i]!, i * 4);
  return zipStored([
    { name: 'archive/data.pkl', data: tensorPickle(shape, stride, numel) },
    { name: 'archive/data/0', data: values },
    { name: 'archive/version', data: Buffer.from('3\n') },
  ]);
}

/** The pickle torch writes for one tensor (the opcodes `pickletools.dis` shows for torch.save's data.pkl). */
function tensorPickle(shape: readonly number[], stride: readonly number[], numel: number): Buffer {
  const out: Buffer[] = [];
  const op = (...bytes: number[]) => out.push(Buffer.from(bytes));
  const global = (module: string, name: string) => out.push(Buffer.from(`c${module}\n${name}\n`, 'latin1'));
  const str = (s: string) => {
    const b = Buffer.from(s, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    out.push(Buffer.from([0x58]), len, b); // BINUNICODE
  };
  const int = (n: number) => {
    if (n < 0x100) op(0x4b, n); // BININT1
    else if (n < 0x10000) op(0x4d, n & 0xff, n >>> 8); // BININT2
    else if (n < 0x80000000) {
      const b = Buffer.alloc(5);
      b[0] = 0x4a; // BININT (signed 32-bit)
      b.writeInt32LE(n, 1);
      out.push(b);
    } else throw new AppError('INPUT_INVALID', `a tensor dimension of ${n} is too large to send`);
  };
  const tuple = (items: readonly number[]) => {
    op(0x28); // MARK
    items.forEach(int);
    op(0x74); // TUPLE
  };
  op(0x80, 2); // PROTO 2
  global('torch._utils', '_rebuild_tensor_v2');
  op(0x28); // MARK: the arguments
  op(0x28); // MARK: the persistent id
  str('storage');
  global('torch', 'FloatStorage');
  str('0');
  str('cpu');
  int(numel);
  op(0x74, 0x51); // TUPLE, BINPERSID
  int(0); // storage offset
  tuple(shape);
  tuple(stride);
  op(0x89); // NEWFALSE: requires_grad
  global('collections', 'OrderedDict');
  op(0x29, 0x52); // EMPTY_TUPLE, REDUCE: backward hooks
  op(0x74, 0x52, 0x2e); // TUPLE, REDUCE, STOP
  return Buffer.concat(out);
}

/** An uncompressed zip (method 0) whose records' data start on 64-byte boundaries, as torch writes them. */
function zipStored(records: { name: string; data: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const r of records) {
    const name = Buffer.from(r.name, 'utf8');
    const crc = crc32(r.data);
    // extra field "FB" (torch's id) of padding so that the data begins at a multiple of 64
    const bare = offset + 30 + name.length;
    const pad = (64 - ((bare + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.write('FB', 0, 'latin1');
    extra.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed
    local.writeUInt16LE(0, 6); // flags
    local.writeUInt16LE(0, 8); // stored
    local.writeUInt32LE(0, 10); // time, date
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(r.data.length, 18);
    local.writeUInt32LE(r.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    const header = Buffer.alloc(46);
    header.writeUInt32LE(0x02014b50, 0);
    header.writeUInt16LE(20, 4); // version made by
    header.writeUInt16LE(20, 6);
    header.writeUInt16LE(0, 8);
    header.writeUInt16LE(0, 10);
    header.writeUInt32LE(0, 12);
    header.writeUInt32LE(crc, 16);
    header.writeUInt32LE(r.data.length, 20);
    header.writeUInt32LE(r.data.length, 24);
    header.writeUInt16LE(name.length, 28);
    header.writeUInt32LE(offset, 42);
    central.push(header, name);
    parts.push(local, name, extra, r.data);
    offset += 30 + name.length + extra.length + r.data.length;
  }
  if (offset > 0xffffffff) throw new AppError('INPUT_INVALID', 'the prompt embeddings are too large for one payload (over 4 GiB)');
  const dir = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(records.length, 8);
  end.writeUInt16LE(records.length, 10);
  end.writeUInt32LE(dir.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, dir, end]);
}
