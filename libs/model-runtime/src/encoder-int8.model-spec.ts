import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError, loadConfig } from '@lib/shared';
import { E2llmModel } from './e2llm-model.js';
import { encoderGraphFor, loadModelPackage } from './model-package.js';

/**
 * The package's int8 encoder (ENCODER_PRECISION=int8) against its f32 encoder on real chunks of the GPL text. The
 * bounds hold the figures measured when it was shipped (training/scripts/quantize_encoder.py: cosine min 0.9997,
 * max |diff| 0.07 over 256 chunks) with some margin.
 */
describe('int8 encoder', () => {
  let f32: E2llmModel;
  let int8: E2llmModel;
  let chunks: number[][];

  beforeAll(async () => {
    f32 = await E2llmModel.load(loadConfig({}), { encoder: true });
    int8 = await E2llmModel.load(loadConfig({ ENCODER_PRECISION: 'int8' }), { encoder: true });
    const text = await readFile(new URL('../../../samples/gpl-3.0.txt', import.meta.url), 'utf8');
    chunks = Array.from({ length: 24 }, (_, i) => f32.encoder.tokenize(text.slice(i * 512, (i + 1) * 512)));
  });
  afterAll(async () => {
    await f32?.release();
    await int8?.release();
  });

  it('loads, and produces vectors close to the f32 encoder in a padded batch', async () => {
    const width = f32.pkg.manifest.encoder.width;
    const [a, b] = [await f32.encoder.encode(chunks), await int8.encoder.encode(chunks)];
    expect(b.length).toBe(a.length);
    let maxAbs = 0;
    for (let r = 0; r < chunks.length; r++) {
      let ab = 0, aa = 0, bb = 0;
      for (let j = r * width; j < (r + 1) * width; j++) {
        ab += a[j]! * b[j]!;
        aa += a[j]! * a[j]!;
        bb += b[j]! * b[j]!;
        maxAbs = Math.max(maxAbs, Math.abs(a[j]! - b[j]!));
      }
      expect(ab / Math.sqrt(aa * bb), `chunk ${r}`).toBeGreaterThan(0.999);
    }
    expect(maxAbs).toBeGreaterThan(0); // it is the quantized graph, not the f32 one again
    expect(maxAbs).toBeLessThan(0.2);
  });

  it('stores soft prompts under its own encoder id', () => {
    expect(int8.encoderId).toMatch(/^enc-[0-9a-f]{32}$/);
    expect(int8.encoderId).not.toBe(f32.encoderId);
  });

  it('is a configuration error on a package without an int8 encoder', async () => {
    const dir = join(tmpdir(), `e2llm-no-int8-${process.pid}`);
    await cp(f32.pkg.dir, dir, { recursive: true });
    try {
      const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
      delete manifest.encoder.int8Onnx;
      await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest));
      const pkg = await loadModelPackage(dir);
      expect(encoderGraphFor(pkg, { encoderPrecision: 'f32' }).path).toBe(join(dir, 'encoder.onnx'));
      expect(() => encoderGraphFor(pkg, { encoderPrecision: 'int8' })).toThrow(AppError);
      expect(() => encoderGraphFor(pkg, { encoderPrecision: 'int8' })).toThrow(/ENCODER_PRECISION=int8/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
