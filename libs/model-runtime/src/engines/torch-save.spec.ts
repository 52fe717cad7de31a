import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { float32JsonArray } from './engine-http.js';
import { torchSaveFloat32 } from './torch-save.js';

/**
 * The payload vLLM reads with `torch.load(io.BytesIO(base64.b64decode(x)), weights_only=True)`: Debian's torch must
 * load what we write into the same shape, dtype and bit-identical values, and the zip must look like one torch wrote.
 */
const LOAD = String.raw`
import base64, io, json, sys, zipfile
import torch
out = []
for p in json.load(sys.stdin):
    raw = base64.b64decode(p["b64"])
    t = torch.load(io.BytesIO(raw), weights_only=True)
    z = zipfile.ZipFile(io.BytesIO(raw))
    offsets = [i.header_offset for i in z.infolist()]
    starts = []
    with io.BytesIO(raw) as f:
        for i in z.infolist():
            f.seek(i.header_offset + 26)
            n, e = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
            starts.append(i.header_offset + 30 + n + e)
    out.append({"type": type(t).__name__, "dtype": str(t.dtype), "shape": list(t.shape), "contiguous": t.is_contiguous(),
                "bits": t.view(torch.int32).flatten().tolist(), "names": z.namelist(), "aligned": all(s % 64 == 0 for s in starts),
                "crc_ok": z.testzip() is None})
json.dump(out, sys.stdout)
`;

describe('torchSaveFloat32', () => {
  it('writes what torch.load(weights_only=True) reads back bit for bit, in any shape', () => {
    const cases = [
      [2, 3],
      [37, 256],
      [1, 70_000],
      [0, 16],
      [5],
    ].map((shape) => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 10 ** ((i % 9) - 4));
      if (n > 3) data.set([-0, 3.4028234663852886e38, -1.1754943508222875e-38], 0);
      return { shape, data };
    });
    const input = cases.map((c) => ({ b64: torchSaveFloat32(c.data, c.shape).toString('base64') }));
    const got = JSON.parse(execFileSync('/usr/bin/python3', ['-c', LOAD], { input: JSON.stringify(input), maxBuffer: 1 << 28 }).toString()) as {
      type: string; dtype: string; shape: number[]; contiguous: boolean; bits: number[]; names: string[]; aligned: boolean; crc_ok: boolean;
    }[];
    got.forEach((g, k) => {
      const c = cases[k]!;
      expect(g).toMatchObject({ type: 'Tensor', dtype: 'torch.float32', shape: c.shape, contiguous: true, aligned: true, crc_ok: true });
      expect(g.names).toEqual(['archive/data.pkl', 'archive/data/0', 'archive/version']);
      expect(g.bits).toEqual(Array.from(new Int32Array(c.data.buffer, c.data.byteOffset, c.data.length)));
    });
  });

  it('refuses a shape that does not hold the values', () => {
    expect(() => torchSaveFloat32(new Float32Array(6), [4, 2])).toThrow(/does not hold 6 values/);
  });
});

describe('float32JsonArray (SGLang input_embeds)', () => {
  it('writes every float32 so that it parses back to the same bits, shorter than JSON.stringify', () => {
    const values = new Float32Array(20_000);
    const bits = new Uint32Array(values.buffer);
    let seed = 7;
    for (let i = 0; i < bits.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      bits[i] = seed;
    }
    for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) values[i] = i % 2 ? 1e-45 : -3.4028234663852886e38;
    values.set([0, -0, 0.1, 1, 100, 1.5e-7, 123456789], 0);
    const text = float32JsonArray(values);
    const back = Float32Array.from(JSON.parse(text) as number[]);
    expect(Array.from(new Uint32Array(back.buffer))).toEqual(Array.from(bits).map((b, i) => (i === 1 ? 0 : b))); // -0 is written as 0
    expect(text.length).toBeLessThan(JSON.stringify(Array.from(values)).length * 0.75);
    expect(text.startsWith('[0,0,0.100000001,1,100,1.50000005e-7,123456792,')).toBe(true);
    expect(() => float32JsonArray(Float32Array.of(Number.NaN))).toThrow(/non-finite/);
  });
});
