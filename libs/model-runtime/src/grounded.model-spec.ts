import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GenerationParams, loadConfig, Task } from '@lib/shared';
import { E2llmModel } from './e2llm-model.js';

/** Evidence and selective expansion through the shipped package (the path e2llm ask and the decoder worker share). */
describe('generateGrounded', () => {
  let model: E2llmModel;
  let text: string;
  const task = Task.parse({ type: 'qa', question: 'Which version of the licence may you choose?' });

  beforeAll(async () => {
    model = await E2llmModel.load(loadConfig({}));
    text = await readFile(new URL('../../../samples/gpl-3.0.txt', import.meta.url), 'utf8');
  });
  afterAll(async () => model?.release());

  it("expands the chunks that match the question in their place and cites the licence's section 14 first", async () => {
    const r = await model.ask(text, task, GenerationParams.parse({ maxNewTokens: 8, expand: { chunks: 3, minScoreRatio: 0 } }));
    expect(r.usage).toMatchObject({ expansionRequested: 3, expandedChunks: 3 });
    expect(r.usage.expansionLimitedBy).toBeUndefined();
    expect(r.usage.softTokens).toBe(r.usage.chunks - 3);
    expect(r.usage.expandedTokens).toBeGreaterThan(3 * 50);
    const first = r.evidence[0]!;
    expect(text.slice(first.charStart, first.charEnd)).toBe(first.text);
    expect(first.text).toMatch(/any later version|choose that version|ever published/);
    const s14 = text.indexOf('14. Revised Versions of this License.');
    expect(first.charStart).toBeGreaterThan(s14);
    expect(r.evidence.filter((e) => e.expanded)).toHaveLength(3);
  });

  it('expands only the chunks that score near the best one by default', async () => {
    const all = await model.ask(text, task, GenerationParams.parse({ maxNewTokens: 2, expand: { chunks: 16, minScoreRatio: 0 } }));
    const near = await model.ask(text, task, GenerationParams.parse({ maxNewTokens: 2, expand: { chunks: 16 } }));
    const scores = all.grounding.scores.bm25!;
    const best = Math.max(...scores);
    const expected = [...scores].filter((s) => s >= best * 0.5).length;
    expect(near.usage).toMatchObject({ expandedChunks: expected, expansionLimitedBy: 'score' });
    expect(expected).toBeLessThan(all.usage.expandedChunks);
    expect(near.evidence.filter((e) => e.expanded).every((e) => e.score >= best * 0.5)).toBe(true);
  });

  it('expands nothing when asked for none, and says why when it cannot expand', async () => {
    const off = await model.ask(text, task, GenerationParams.parse({ maxNewTokens: 2, expand: { chunks: 0 } }));
    expect(off.usage).toMatchObject({ expansionRequested: 0, expandedChunks: 0, expandedTokens: 0, softTokens: off.usage.chunks });
    expect(off.evidence.length).toBeGreaterThan(0);
    const summary = await model.ask(text, { type: 'summarize' }, GenerationParams.parse({ maxNewTokens: 2 }));
    expect(summary.usage).toMatchObject({ expandedChunks: 0, expansionLimitedBy: 'no_query' });
    // The window: 4096 positions hold the soft tokens but only a few raw chunks beside 3,900 new tokens.
    const tight = await model.ask(text, task, GenerationParams.parse({ maxNewTokens: 3800, expand: { chunks: 16, minScoreRatio: 0 }, stop: ['\n'] }));
    expect(tight.usage.expansionLimitedBy).toBe('window');
    expect(tight.usage.expandedChunks).toBeLessThan(16);
    expect(tight.usage.promptTokens + tight.usage.softTokens + tight.usage.expandedTokens + 3800).toBeLessThanOrEqual(model.decoder.window);
  });

  it('answers from the soft tokens alone when the chunk texts are gone', async () => {
    const chunks = model.chunk(text.slice(0, 4000));
    const soft = await model.adapter.run(await model.encoder.encode(chunks.map((c) => c.ids)), chunks.length);
    const g = await model.generateGrounded({ chunks: null, softTokens: soft, task, params: GenerationParams.parse({ maxNewTokens: 2 }) });
    expect(g.expansion).toMatchObject({ expandedChunks: 0, expansionLimitedBy: 'source_missing' });
    expect(g.evidence).toEqual([]);
  });
});
