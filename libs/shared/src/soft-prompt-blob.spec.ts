import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppError, type ErrorCode } from './errors.js';
import { decodeSoftPrompt, encodeSoftPrompt, SOFT_PROMPT_BLOB_VERSION, type SoftPrompt } from './soft-prompt-blob.js';
import { codeOf } from '../test/error-code.js';

const ENCODER = 'enc-3f2a9c';
const HASH = createHash('sha256').update('a chunk').digest('hex');

/** The code of the AppError `fn` throws; fails the test if it returns or throws anything else. */
function sample(shape = [3, 4], encoderId = ENCODER): SoftPrompt {
  const count = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: count }, (_, i) => Math.fround(Math.sin(i + 1) * (i + 1)));
  return { encoderId, chunkHash: HASH, shape, data };
}

/** Header length for a blob written by `encodeSoftPrompt` (see the layout comment in soft-prompt-blob.ts). */
function headerBytes(p: SoftPrompt): number {
  return 10 + Buffer.byteLength(p.encoderId, 'utf8') + 32 + 4 * p.shape.length;
}

/** Recomputes the trailing checksum, so a test can change one field and see that field's own check fire. */
function reseal(blob: Buffer): Buffer {
  const out = Buffer.from(blob);
  const body = out.subarray(0, out.length - 16);
  createHash('sha256').update(body).digest().copy(out, out.length - 16, 0, 16);
  return out;
}

describe('encodeSoftPrompt / decodeSoftPrompt', () => {
  it('round-trips f32 exactly, shape and encoder id included', () => {
    const p = sample([2, 3, 4]);
    const decoded = decodeSoftPrompt(encodeSoftPrompt(p, 'f32'), { encoderId: ENCODER });
    expect(decoded.encoderId).toBe(ENCODER);
    expect(decoded.shape).toEqual([2, 3, 4]);
    expect(decoded.data).toBeInstanceOf(Float32Array);
    expect(Array.from(decoded.data)).toEqual(Array.from(p.data));
  });

  it('writes f32 by default', () => {
    const p = sample();
    expect(encodeSoftPrompt(p)).toEqual(encodeSoftPrompt(p, 'f32'));
    expect(encodeSoftPrompt(p).length).toBe(headerBytes(p) + 4 * p.data.length + 16);
  });

  it('round-trips arbitrary f32 values bit for bit (NaN, infinities, -0, subnormals)', () => {
    fc.assert(
      fc.property(fc.array(fc.float(), { maxLength: 64 }), (values) => {
        const data = Float32Array.from(values);
        const out = decodeSoftPrompt(encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [data.length], data }));
        expect(new Uint8Array(out.data.buffer)).toEqual(new Uint8Array(data.buffer));
      }),
    );
  });

  it('round-trips f16 within half-precision tolerance, in half the data bytes', () => {
    fc.assert(
      fc.property(fc.array(fc.float({ min: -60000, max: 60000, noNaN: true }), { minLength: 1, maxLength: 64 }), (values) => {
        const p: SoftPrompt = { encoderId: ENCODER, chunkHash: HASH, shape: [1, values.length], data: Float32Array.from(values) };
        const blob = encodeSoftPrompt(p, 'f16');
        expect(blob.length).toBe(headerBytes(p) + 2 * values.length + 16);
        const out = decodeSoftPrompt(blob, { encoderId: ENCODER });
        expect(out.shape).toEqual([1, values.length]);
        expect(out.data).toBeInstanceOf(Float32Array);
        p.data.forEach((x, i) => {
          // Half a unit in the last place: 2^-11 relative for normals, 2^-25 absolute in the subnormal range.
          expect(Math.abs(out.data[i]! - x)).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
        });
      }),
    );
  });

  it('stores f16 values that are exact in half precision exactly', () => {
    const data = new Float32Array([1, -2, 0.5, 65504, 2 ** -24, 0, 0.333251953125]);
    const out = decodeSoftPrompt(encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [data.length], data }, 'f16'));
    expect(Array.from(out.data)).toEqual(Array.from(data));
  });

  it('stores f16 overflow as infinity', () => {
    const data = new Float32Array([70000, -70000]);
    const out = decodeSoftPrompt(encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [2], data }, 'f16'));
    expect(Array.from(out.data)).toEqual([Infinity, -Infinity]);
  });

  it('round-trips a non-ASCII encoder id, an empty one, a scalar and an empty tensor', () => {
    const unicode = sample([2, 2], 'énc-日本-🙂');
    expect(decodeSoftPrompt(encodeSoftPrompt(unicode), { encoderId: 'énc-日本-🙂' }).encoderId).toBe('énc-日本-🙂');
    expect(decodeSoftPrompt(encodeSoftPrompt(sample([2], ''))).encoderId).toBe('');
    const scalar = decodeSoftPrompt(encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [], data: new Float32Array([7.5]) }));
    expect(scalar.shape).toEqual([]);
    expect(Array.from(scalar.data)).toEqual([7.5]);
    const empty = decodeSoftPrompt(encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [0, 256], data: new Float32Array(0) }));
    expect(empty.shape).toEqual([0, 256]);
    expect(empty.data.length).toBe(0);
  });

  it('decodes a blob that sits at an odd offset inside a larger buffer, and returns data it owns', () => {
    const p = sample([5]);
    const blob = encodeSoftPrompt(p);
    const big = new Uint8Array(blob.length + 3);
    big.set(blob, 1);
    const view = big.subarray(1, 1 + blob.length);
    const out = decodeSoftPrompt(view, { encoderId: ENCODER });
    expect(Array.from(out.data)).toEqual(Array.from(p.data));
    big.fill(0);
    expect(Array.from(out.data)).toEqual(Array.from(p.data));
  });

  it('decodes the written bytes the layout comment describes', () => {
    const blob = encodeSoftPrompt({ encoderId: 'ab', chunkHash: HASH, shape: [2], data: new Float32Array([1, -2]) }, 'f16');
    expect(blob.subarray(0, 4).toString('ascii')).toBe('E2SP');
    expect(blob[4]).toBe(SOFT_PROMPT_BLOB_VERSION);
    expect(blob[5]).toBe(1); // dtype f16
    expect(blob[6]).toBe(1); // ndim
    expect(blob.readUInt16LE(8)).toBe(2);
    expect(blob.subarray(10, 12).toString('utf8')).toBe('ab');
    expect(blob.subarray(12, 44).toString('hex')).toBe(HASH);
    expect(blob.readUInt32LE(44)).toBe(2);
    expect(blob.readUInt16LE(48)).toBe(0x3c00);
    expect(blob.readUInt16LE(50)).toBe(0xc000);
    expect(blob.length).toBe(52 + 16);
    expect(blob.subarray(52)).toEqual(createHash('sha256').update(blob.subarray(0, 52)).digest().subarray(0, 16));
  });
});

describe('encodeSoftPrompt input checks', () => {
  it('throws when the shape does not match the number of values', () => {
    expect(codeOf(() => encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [2, 3], data: new Float32Array(5) }))).toBe('INTERNAL');
    expect(codeOf(() => encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [2, 3], data: new Float32Array(7) }))).toBe('INTERNAL');
    expect(codeOf(() => encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [], data: new Float32Array(0) }))).toBe('INTERNAL');
    expect(codeOf(() => encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [0], data: new Float32Array(1) }))).toBe('INTERNAL');
  });

  it('throws on a rank above 255 or an encoder id longer than 65535 bytes', () => {
    const ones = Array.from({ length: 256 }, () => 1);
    expect(codeOf(() => encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: ones, data: new Float32Array(1) }))).toBe('INTERNAL');
    expect(codeOf(() => encodeSoftPrompt({ encoderId: 'x'.repeat(0x10000), chunkHash: HASH, shape: [1], data: new Float32Array(1) }))).toBe(
      'INTERNAL',
    );
  });

  it('never writes a blob it cannot read back: a non-integer dimension throws', () => {
    // [2.5, 2] multiplies out to the 5 values given, but the header stores whole u32 dimensions ([2, 2]), so the
    // blob written would fail its own length check on decode.
    expect(codeOf(() => encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [2.5, 2], data: new Float32Array(5) }))).toBe('INTERNAL');
  });

  it('throws on a negative dimension', () => {
    expect(() => encodeSoftPrompt({ encoderId: ENCODER, chunkHash: HASH, shape: [-1, -5], data: new Float32Array(5) })).toThrow();
  });
});

describe('decodeSoftPrompt rejects every corruption as BLOB_CORRUPT', () => {
  const p = sample([2, 3]);
  const blobs = { f32: encodeSoftPrompt(p, 'f32'), f16: encodeSoftPrompt(p, 'f16') };

  it('accepts the untouched blobs and a resealed copy (the helpers below are sound)', () => {
    for (const blob of Object.values(blobs)) {
      expect(decodeSoftPrompt(blob, { encoderId: ENCODER }).shape).toEqual([2, 3]);
      expect(reseal(blob)).toEqual(blob);
    }
  });

  it.each(['f32', 'f16'] as const)('any single flipped byte, header, data or checksum (%s)', (dtype) => {
    const blob = blobs[dtype];
    const missed: string[] = [];
    for (let i = 0; i < blob.length; i++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(blob);
        bad[i]! ^= mask;
        try {
          decodeSoftPrompt(bad, { encoderId: ENCODER });
          missed.push(`byte ${i} ^ ${mask}: decoded`);
        } catch (err) {
          if (!(err instanceof AppError) || err.code !== 'BLOB_CORRUPT') missed.push(`byte ${i} ^ ${mask}: ${String(err)}`);
        }
      }
    }
    expect(missed).toEqual([]);
  });

  it('a flipped data byte', () => {
    const bad = Buffer.from(blobs.f32);
    bad[headerBytes(p) + 5]! ^= 0x10;
    expect(codeOf(() => decodeSoftPrompt(bad))).toBe('BLOB_CORRUPT');
  });

  it('a flipped header byte (in the encoder id)', () => {
    const bad = Buffer.from(blobs.f32);
    bad[11]! ^= 0x01;
    expect(codeOf(() => decodeSoftPrompt(bad))).toBe('BLOB_CORRUPT');
  });

  it('every truncation, down to zero bytes', () => {
    for (const blob of Object.values(blobs)) {
      for (let n = 0; n < blob.length; n++) {
        expect(codeOf(() => decodeSoftPrompt(blob.subarray(0, n), { encoderId: ENCODER })), `truncated to ${n} bytes`).toBe('BLOB_CORRUPT');
      }
    }
  });

  it('bad magic', () => {
    const bad = Buffer.from(blobs.f32);
    bad.write('E2SQ', 0, 'ascii');
    expect(codeOf(() => decodeSoftPrompt(reseal(bad)))).toBe('BLOB_CORRUPT');
    expect(codeOf(() => decodeSoftPrompt(new Uint8Array(0)))).toBe('BLOB_CORRUPT');
    expect(codeOf(() => decodeSoftPrompt(Buffer.from('not a blob at all, just some text bytes')))).toBe('BLOB_CORRUPT');
  });

  it.each([0, SOFT_PROMPT_BLOB_VERSION + 1, 255])('bad version %i, even with a valid checksum', (version) => {
    const bad = Buffer.from(blobs.f32);
    bad[4] = version;
    expect(codeOf(() => decodeSoftPrompt(reseal(bad)))).toBe('BLOB_CORRUPT');
  });

  it('an unknown dtype, or the other dtype, even with a valid checksum', () => {
    for (const dtype of [2, 255]) {
      const bad = Buffer.from(blobs.f32);
      bad[5] = dtype;
      expect(codeOf(() => decodeSoftPrompt(reseal(bad)))).toBe('BLOB_CORRUPT');
    }
    const swapped = Buffer.from(blobs.f32);
    swapped[5] = 1; // says f16, holds f32 bytes: the length no longer matches
    expect(codeOf(() => decodeSoftPrompt(reseal(swapped)))).toBe('BLOB_CORRUPT');
  });

  it('a shape that does not match the data length, even with a valid checksum', () => {
    const bad = Buffer.from(blobs.f32);
    bad.writeUInt32LE(4, headerBytes(p) - 4); // [2, 3] -> [2, 4]
    expect(codeOf(() => decodeSoftPrompt(reseal(bad)))).toBe('BLOB_CORRUPT');
    const huge = Buffer.from(blobs.f32);
    huge.writeUInt32LE(0xffffffff, headerBytes(p) - 8);
    expect(codeOf(() => decodeSoftPrompt(reseal(huge)))).toBe('BLOB_CORRUPT');
  });

  it('an encoder id length pointing past the end, even with a valid checksum', () => {
    const bad = Buffer.from(blobs.f32);
    bad.writeUInt16LE(0xffff, 8);
    expect(codeOf(() => decodeSoftPrompt(reseal(bad)))).toBe('BLOB_CORRUPT');
  });

  it('a blob written by another encoder than the one expected', () => {
    expect(codeOf(() => decodeSoftPrompt(blobs.f32, { encoderId: 'enc-other' }))).toBe('BLOB_CORRUPT');
    expect(codeOf(() => decodeSoftPrompt(blobs.f32, { encoderId: '' }))).toBe('BLOB_CORRUPT');
    expect(codeOf(() => decodeSoftPrompt(blobs.f16, { encoderId: ENCODER.toUpperCase() }))).toBe('BLOB_CORRUPT');
    expect(decodeSoftPrompt(blobs.f32).encoderId).toBe(ENCODER); // no expectation: any encoder is accepted
  });

  it("a blob read from another chunk's key (moved, copied or swapped there), whatever its checksum", () => {
    const other = createHash('sha256').update('another chunk').digest('hex');
    expect(codeOf(() => decodeSoftPrompt(blobs.f32, { encoderId: ENCODER, chunkHash: other }))).toBe('BLOB_CORRUPT');
    expect(decodeSoftPrompt(blobs.f32, { encoderId: ENCODER, chunkHash: HASH }).chunkHash).toBe(HASH);
  });

  it('a version 1 blob (no chunk hash), so it is encoded again', () => {
    const v1 = Buffer.from(blobs.f32);
    v1[4] = 1;
    expect(codeOf(() => decodeSoftPrompt(reseal(v1), { encoderId: ENCODER }))).toBe('BLOB_CORRUPT');
  });

  it('extra trailing bytes', () => {
    for (const blob of Object.values(blobs)) {
      for (const extra of [Buffer.from([0]), Buffer.alloc(16), Buffer.from(blob)]) {
        expect(codeOf(() => decodeSoftPrompt(Buffer.concat([blob, extra]), { encoderId: ENCODER }))).toBe('BLOB_CORRUPT');
      }
    }
  });

  it('random garbage, with or without a valid magic, version and dtype in front', () => {
    const magic = [...Buffer.from('E2SP', 'ascii'), SOFT_PROMPT_BLOB_VERSION];
    const prefix = fc.constantFrom(Buffer.alloc(0), Buffer.from([...magic, 0]), Buffer.from([...magic, 1]));
    fc.assert(
      fc.property(prefix, fc.uint8Array({ maxLength: 200 }), (head, rest) => {
        expect(codeOf(() => decodeSoftPrompt(Buffer.concat([head, rest])))).toBe('BLOB_CORRUPT');
      }),
      { numRuns: 2000 },
    );
  });
});
