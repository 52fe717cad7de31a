import { AppError } from '@lib/shared';
import { describe, expect, it } from 'vitest';
import { rulerChartSvg } from './chart.js';
import { runRuler, type EvalRunner } from './harness.js';
import { PAPER_RULER } from './paper.js';

// A rough counter keeps this test fast; the real tokenizer is covered in generators.spec.ts.
const count = (text: string) => Math.ceil(text.length / 4);

const needleChunk = (s: { needles?: { text: string }[]; outputs: string[] }) => s.needles?.[0]?.text ?? `VAR ${s.outputs[0]} = 1.`;
// The oracle's "right" scorer points at the needle; its "wrong" one at a chunk of the haystack alone.
const oracle: EvalRunner = {
  answer: async (s) => ({ text: s.outputs.join(', '), topChunks: { right: `... ${needleChunk(s)} ...`, wrong: 'The grass is green.', none: null } }),
};
const halfRight: EvalRunner = { answer: async (s) => ({ text: s.index % 2 === 0 ? s.outputs.join(' ') : 'no idea' }) };
const smallWindow: EvalRunner = {
  answer: async (s, maxNewTokens) => {
    if (s.tokens + maxNewTokens > 1100) throw new AppError('CONTEXT_TOO_LONG', 'over the window');
    return { text: s.outputs.join(' ') };
  },
};

describe('runRuler', () => {
  it('scores every runner on the same samples and reports over-window results as such', async () => {
    const seen: string[] = [];
    const out = await runRuler({
      tasks: ['niah_single_1', 'vt'],
      lengths: [512, 2048],
      samples: 2,
      seed: 1,
      countTokens: count,
      runners: { oracle, halfRight, smallWindow },
      onSample: (e) => seen.push(`${e.runner}/${e.task}/${e.length}/${e.index}`),
    });
    expect(out.oracle!.map((r) => r.score)).toEqual([100, 100, 100, 100]);
    expect(out.halfRight!.map((r) => r.score)).toEqual([50, 50, 50, 50]);
    const over = out.smallWindow!.filter((r) => r.length === 2048);
    expect(over.every((r) => r.overWindow === true && r.score === null)).toBe(true);
    expect(out.smallWindow!.filter((r) => r.length === 512).every((r) => r.score === 100 && r.overWindow === undefined)).toBe(true);
    expect(out.oracle![0]).toMatchObject({ task: 'niah_single_1', length: 512, samples: 2 });
    expect(out.oracle!.map((r) => r.evidencePrecisionAt1)).toEqual(Array(4).fill({ right: 100, wrong: 0, none: 0 }));
    expect(out.halfRight![0]!.evidencePrecisionAt1).toBeUndefined();
    expect(seen).toHaveLength(3 * 2 * 2 * 2);
  });

  it('lets other errors through', async () => {
    const broken: EvalRunner = { answer: async () => Promise.reject(new AppError('MODEL_INVALID', 'bad')) };
    await expect(runRuler({ tasks: ['fwe'], lengths: [512], samples: 1, seed: 1, countTokens: count, runners: { broken } })).rejects.toThrow('bad');
  });
});

describe('rulerChartSvg', () => {
  it('draws a panel per task, lines per series, hollow marks for over-window points and the paper figures', () => {
    const r = (task: 'niah_single_1' | 'vt', length: number, score: number | null) => ({
      task,
      length,
      samples: 2,
      score,
      meanTokens: length,
      seconds: 1,
      ...(score === null ? { overWindow: true as const } : {}),
    });
    const svg = rulerChartSvg(
      [
        { name: 'E2LLM', results: [r('niah_single_1', 4096, 10), r('niah_single_1', 8192, 5), r('vt', 4096, 0), r('vt', 8192, 20)] },
        { name: 'baseline', dashed: true, results: [r('niah_single_1', 4096, null), r('vt', 4096, null)] },
      ],
      { title: 'test <chart>', references: PAPER_RULER },
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('test &lt;chart&gt;');
    expect(svg.match(/font-weight="bold">(niah_single_1|vt)</g)).toHaveLength(2);
    expect(svg.match(/fill="white" stroke="#888"/g)).toHaveLength(2);
    expect(svg).toContain('RULER 8k NIAH 60.66');
    expect(svg).not.toContain('32k VT');
  });
});
