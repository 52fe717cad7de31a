import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits, fromF16, toF16 } from './f16.js';

const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x03ff) !== 0;

/**
 * An independent f32 -> f16 reference, built from the definition rather than from bit fiddling: scale the value so
 * one f16 step is 1, round half to even, scale back. Every step is exact in f64 for an f32 input.
 */
function referenceF16Value(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const sign = x < 0 || Object.is(x, -0) ? -1 : 1;
  const a = Math.abs(x);
  if (a === Infinity) return sign * Infinity;
  let step: number;
  if (a < 2 ** -14) {
    step = 2 ** -24; // subnormal spacing
  } else {
    let e = -14;
    while (2 ** (e + 1) <= a) e++;
    step = 2 ** (e - 10);
  }
  const q = a / step;
  const floor = Math.floor(q);
  const frac = q - floor;
  const r = frac > 0.5 || (frac === 0.5 && floor % 2 === 1) ? floor + 1 : floor;
  const v = r * step;
  return sign * (v > 65504 ? Infinity : v);
}

describe('f32ToF16Bits', () => {
  it.each([
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [-65504, 0xfbff],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [0.1, 0x2e66], // numpy: np.float16(0.1).view(np.uint16)
    [1 / 3, 0x3555],
    [Math.PI, 0x4248],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ])('converts %d to bits %i', (value, bits) => {
    expect(f32ToF16Bits(value)).toBe(bits);
  });

  it('overflows to infinity from 65520 (the tie above 65504 rounds to the even neighbour, infinity)', () => {
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00);
    expect(f32ToF16Bits(-65520)).toBe(0xfc00);
    expect(f32ToF16Bits(1e10)).toBe(0x7c00);
    expect(f32ToF16Bits(3.4e38)).toBe(0x7c00);
  });

  it('underflows to a signed zero below half the smallest subnormal', () => {
    expect(f32ToF16Bits(2 ** -26)).toBe(0x0000);
    expect(f32ToF16Bits(-(2 ** -26))).toBe(0x8000);
    expect(f32ToF16Bits(1e-40)).toBe(0x0000); // an f32 subnormal
  });

  it('maps NaN to a NaN pattern (exponent all ones, mantissa non-zero)', () => {
    expect(isF16NaN(f32ToF16Bits(NaN))).toBe(true);
    expect(isF16NaN(f32ToF16Bits(-NaN))).toBe(true);
  });

  it.each([
    ['1 + 2^-11: tie, rounds down to even 0x3c00', 1 + 2 ** -11, 0x3c00],
    ['1 + 3*2^-11: tie, rounds up to even 0x3c02', 1 + 3 * 2 ** -11, 0x3c02],
    ['just above the 1 + 2^-11 tie rounds up', 1 + 2 ** -11 + 2 ** -23, 0x3c01],
    ['just below the 1 + 3*2^-11 tie rounds down', 1 + 3 * 2 ** -11 - 2 ** -23, 0x3c01],
    ['2049: tie, rounds down to even 2048', 2049, 0x6800],
    ['2051: tie, rounds up to even 2052', 2051, 0x6802],
    ['2 - 2^-11: tie, carries into the exponent (2.0)', 2 - 2 ** -11, 0x4000],
    ['2^-25: subnormal tie, rounds down to zero', 2 ** -25, 0x0000],
    ['3*2^-25: subnormal tie, rounds up to even 0x0002', 3 * 2 ** -25, 0x0002],
    ['just above 2^-25 rounds up to the smallest subnormal', 2 ** -25 * (1 + 2 ** -23), 0x0001],
    ['2^-14 - 2^-25: tie at the top of the subnormals, carries into the smallest normal', 2 ** -14 - 2 ** -25, 0x0400],
  ])('rounds to nearest even: %s', (_what, value, bits) => {
    expect(Math.fround(value)).toBe(value); // the case must be an exact f32, or it tests f64 -> f32 rounding instead
    expect(f32ToF16Bits(value)).toBe(bits);
  });

  it('agrees with a reference rounding on arbitrary f32 values', () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true }), (x) => {
        expect(f16BitsToF32(f32ToF16Bits(x))).toBe(referenceF16Value(x));
      }),
      { numRuns: 20_000 },
    );
  });

  it('agrees with a reference rounding on values near f16 range edges', () => {
    const near = fc.oneof(
      fc.double({ min: 2 ** -26, max: 2 ** -13, noNaN: true }),
      fc.double({ min: 60000, max: 70000, noNaN: true }),
      fc.double({ min: 0.5, max: 4, noNaN: true }),
    );
    fc.assert(
      fc.property(near, fc.boolean(), (d, negative) => {
        const x = Math.fround(negative ? -d : d);
        expect(f16BitsToF32(f32ToF16Bits(x))).toBe(referenceF16Value(x));
      }),
      { numRuns: 20_000 },
    );
  });
});

describe('f16BitsToF32', () => {
  it.each([
    [0x3c00, 1],
    [0xc000, -2],
    [0x7bff, 65504],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x3555, 0.333251953125],
    [0x7c00, Infinity],
    [0xfc00, -Infinity],
  ])('decodes bits %i', (bits, value) => {
    expect(f16BitsToF32(bits)).toBe(value);
  });

  it('keeps the sign of zero', () => {
    expect(Object.is(f16BitsToF32(0x0000), 0)).toBe(true);
    expect(Object.is(f16BitsToF32(0x8000), -0)).toBe(true);
  });

  it('decodes every NaN pattern to NaN', () => {
    for (const bits of [0x7c01, 0x7e00, 0x7fff, 0xfc01, 0xfe00]) expect(f16BitsToF32(bits)).toBeNaN();
  });

  it('round-trips all 65536 bit patterns through f32 (NaNs stay NaN)', () => {
    const mismatches: string[] = [];
    for (let h = 0; h <= 0xffff; h++) {
      const back = f32ToF16Bits(f16BitsToF32(h));
      const ok = isF16NaN(h) ? isF16NaN(back) : back === h;
      if (!ok) mismatches.push(`0x${h.toString(16)} -> 0x${back.toString(16)}`);
    }
    expect(mismatches).toEqual([]);
  });
});

describe('toF16 / fromF16', () => {
  it('convert arrays element by element', () => {
    const values = new Float32Array([1, -2, 65504, 65520, 2 ** -24, 0, -0]);
    const bits = toF16(values);
    expect(bits).toBeInstanceOf(Uint16Array);
    expect(Array.from(bits)).toEqual([0x3c00, 0xc000, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x8000]);
    const back = fromF16(bits);
    expect(back).toBeInstanceOf(Float32Array);
    expect(Array.from(back)).toEqual([1, -2, 65504, Infinity, 2 ** -24, 0, -0]);
  });

  it('handle empty arrays', () => {
    expect(toF16(new Float32Array(0)).length).toBe(0);
    expect(fromF16(new Uint16Array(0)).length).toBe(0);
  });
});
