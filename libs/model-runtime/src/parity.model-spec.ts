import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationParams, loadConfig, Task } from '@lib/shared';
import { E2llmModel } from './e2llm-model.js';

/**
 * The TypeScript runtime must reproduce the PyTorch reference outputs the exporter stored with the shipped package:
 * encoder and adapter outputs and decoder logits within 1e-4, and the same 32 greedy tokens with and without the
 * KV cache.
 */
const TOLERANCE = 1e-4;

interface Golden {
  chunks: string[];
  encoderInputIds: number[][];
  chunkEmbeddings: number[][];
  softTokens: number[][];
  task: unknown;
  prefixIds: number[];
  suffixIds: number[];
  prefillLogits: number[];
  greedyTokens: number[];
  greedyTokensNoCache: number[];
  stepLogits: number[][];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

describe('runtime parity with the PyTorch golden outputs', () => {
  let model: E2llmModel;
  let golden: Golden;
  const greedy32 = GenerationParams.parse({ maxNewTokens: 32 });

  beforeAll(async () => {
    model = await E2llmModel.load(loadConfig({}));
    golden = JSON.parse(await readFile(model.pkg.files.golden!, 'utf8')) as Golden;
  });
  afterAll(async () => model?.release());

  it('tokenizes chunks and prompt as PyTorch did', () => {
    expect(golden.chunks.map((c) => model.encoder.tokenize(c))).toEqual(golden.encoderInputIds);
    expect(model.promptIds(Task.parse(golden.task))).toEqual({ prefixIds: golden.prefixIds, suffixIds: golden.suffixIds });
  });

  it('encodes chunks (batched and padded) within tolerance', async () => {
    const out = await model.encoder.encode(golden.encoderInputIds);
    expect(maxAbsDiff(out, golden.chunkEmbeddings.flat())).toBeLessThan(TOLERANCE);
    // One chunk at a time (no padding) gives the same vectors.
    const single = await model.encoder.encode(golden.encoderInputIds.slice(0, 1));
    expect(maxAbsDiff(single, golden.chunkEmbeddings[0]!)).toBeLessThan(TOLERANCE);
  });

  it('maps chunk vectors to soft tokens within tolerance', async () => {
    const out = await model.adapter.run(new Float32Array(golden.chunkEmbeddings.flat()), golden.chunks.length);
    expect(maxAbsDiff(out, golden.softTokens.flat())).toBeLessThan(TOLERANCE);
  });

  for (const kvCache of [true, false]) {
    it(`generates the golden 32 greedy tokens ${kvCache ? 'with' : 'without'} the KV cache, logits within tolerance`, async () => {
      const input = { prefixIds: golden.prefixIds, suffixIds: golden.suffixIds, context: new Float32Array(golden.softTokens.flat()) };
      const result = await model.decoder.generate(input, greedy32, { keepLogits: true, kvCache });
      expect(result.tokens).toEqual(kvCache ? golden.greedyTokens : golden.greedyTokensNoCache);
      expect(result.finishReason).toBe('length');
      expect(maxAbsDiff(result.stepLogits![0]!, golden.prefillLogits)).toBeLessThan(TOLERANCE);
      golden.stepLogits.forEach((expected, step) => {
        expect(maxAbsDiff(result.stepLogits![step]!, expected), `step ${step}`).toBeLessThan(TOLERANCE);
      });
    });
  }

  it('runs the whole pipeline on the golden text end to end', async () => {
    // The golden is the compressed path alone: no chunk expanded.
    const result = await model.ask(golden.chunks.join(''), Task.parse(golden.task), GenerationParams.parse({ maxNewTokens: 32, expand: { chunks: 0 } }));
    expect(result.usage.softTokens).toBe(result.usage.chunks);
    expect(result.usage.generatedTokens).toBeGreaterThan(0);
    expect(result.answer.length).toBeGreaterThan(0);
  });
});
