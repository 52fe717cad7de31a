import { fileURLToPath } from 'node:url';
import { TextTokenizer } from '@lib/model-runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateFitted } from './fit.js';
import { generateSample } from './generators.js';
import { NOISE, essayText, splitSentences } from './haystack.js';
import { Rng } from './rng.js';
import { DEPTHS, RULER_TASKS, RULER_TASK_NAMES } from './ruler-tasks.js';

const TOKENIZER = fileURLToPath(new URL('../../../models/e2llm-tiny/tokenizer.json', import.meta.url));
let count: (text: string) => number;

beforeAll(async () => {
  const tok = await TextTokenizer.load(TOKENIZER);
  count = (t) => tok.encode(t).length;
});

/** Occurrences of a substring. */
const occurrences = (text: string, s: string) => text.split(s).length - 1;

describe('RULER task definitions', () => {
  it('has the 40 depths from 0 to 100 and RULER\'s max new tokens', () => {
    expect(DEPTHS).toHaveLength(40);
    expect(DEPTHS[0]).toBe(0);
    expect(DEPTHS[39]).toBe(100);
    expect(DEPTHS[1]).toBe(3);
    expect([RULER_TASKS.niah_single_1.maxNewTokens, RULER_TASKS.vt.maxNewTokens, RULER_TASKS.cwe.maxNewTokens, RULER_TASKS.fwe.maxNewTokens]).toEqual([128, 30, 120, 50]);
  });
});

describe('length fitting with the real decoder tokenizer', () => {
  it.each(RULER_TASK_NAMES.map((n) => [n]))('%s fills 2048 tokens (input + max new tokens) within 3%%', (name) => {
    const samples = generateFitted(RULER_TASKS[name], 2048, 2, 1, count);
    for (const s of samples) {
      const tokens = count(s.input) + RULER_TASKS[name].maxNewTokens;
      expect(s.tokens).toBe(tokens);
      expect(tokens).toBeLessThanOrEqual(2048);
      expect(tokens).toBeGreaterThanOrEqual(2048 * 0.97);
    }
  });
});

describe('needle placement', () => {
  it('puts an essay needle between sentences at the requested depth', () => {
    const sents = splitSentences(essayText(1500));
    for (const depth of [0, 26, 50, 100]) {
      const s = generateSample(RULER_TASKS.niah_single_2, 1500, new Rng(`d${depth}`), { length: 4096, depths: [depth] });
      const [needle] = s.needles!;
      expect(needle!.depth).toBe(depth);
      const context = s.document.slice(s.document.indexOf('\n') + 1);
      const at = context.indexOf(needle!.text);
      // RULER's depth counts sentences: the needle follows floor(sentences * depth / 100) of them.
      const pos = Math.floor((sents.length * depth) / 100);
      expect(context.slice(0, at).trim()).toBe(sents.slice(0, pos).join(' '));
      expect(Math.abs(at / context.length - depth / 100)).toBeLessThan(0.06);
    }
  });

  it('puts noise and needle-haystack needles on the requested line', () => {
    const s = generateSample(RULER_TASKS.niah_single_1, 200, new Rng(3), { length: 4096, depths: [25] });
    const lines = s.document.split('\n').slice(1);
    expect(lines).toHaveLength(201);
    expect(lines[50]).toBe(s.needles![0]!.text);
    expect(lines.filter((l) => l === NOISE)).toHaveLength(200);
    const m = generateSample(RULER_TASKS.niah_multikey_1, 3000, new Rng(4), { length: 8192, depths: [10, 40, 70, 95] });
    const ctx = m.document;
    const order = m.needles!.map((n) => ctx.indexOf(n.text));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(m.needles!.map((n) => n.depth)).toEqual([10, 40, 70, 95]);
  });

  it('draws depths from the 40 when none are given', () => {
    const s = generateSample(RULER_TASKS.niah_multivalue, 800, new Rng(5), { length: 4096 });
    expect(s.needles).toHaveLength(4);
    for (const n of s.needles!) expect(DEPTHS).toContain(n.depth);
  });
});

describe('answers are right by construction', () => {
  it('niah: every answer is in a needle for a key the question asks about, and distractor keys differ', () => {
    for (const name of ['niah_single_1', 'niah_single_3', 'niah_multikey_2', 'niah_multikey_3', 'niah_multivalue', 'niah_multiquery'] as const) {
      const s = generateSample(RULER_TASKS[name], 60, new Rng(name), { length: 4096 });
      const c = RULER_TASKS[name].config;
      if (c.kind !== 'niah') throw new Error('not niah');
      expect(s.outputs).toHaveLength(c.numValues * c.numQueries);
      for (const value of s.outputs) {
        const needle = new RegExp(`One of the special magic ${c.valueType} for (\\S+) is: ${value}\\.`).exec(s.document);
        expect(needle, `${name}: needle for ${value}`).not.toBeNull();
        const key = needle![1]!;
        expect(s.question).toContain(key);
        expect(occurrences(s.document, ` for ${key} is:`)).toBe(c.numValues);
      }
      if (c.valueType === 'numbers') for (const v of s.outputs) expect(v).toMatch(/^\d{7}$/);
      if (c.valueType === 'uuids') for (const v of s.outputs) expect(v).toMatch(/^[0-9a-f-]{36}$/);
    }
    const single = generateSample(RULER_TASKS.niah_single_2, 300, new Rng(1), { length: 4096 });
    expect(single.question).toMatch(/^What is the special magic number for [a-z]+-[a-z]+ mentioned in the provided text\?$/);
    expect(single.input.endsWith('mentioned in the provided text is')).toBe(true);
    const multi = generateSample(RULER_TASKS.niah_multiquery, 300, new Rng(1), { length: 4096 });
    expect(multi.question).toMatch(/^What are all the special magic numbers for \S+, \S+, \S+, and \S+ mentioned/);
  });

  it('vt: the answer is every variable the chain assigns the queried value to', () => {
    const s = generateSample(RULER_TASKS.vt, 40, new Rng(9), { length: 4096, vtExampleNoises: 5 });
    // The main text comes after the one-shot example.
    const main = s.document.slice(s.document.lastIndexOf('Memorize and track'));
    const value = /value (\d+) in the text above/.exec(s.question)![1]!;
    const assigned = new Map<string, string>();
    for (const m of main.matchAll(/VAR ([A-Z]+) = (VAR ([A-Z]+)|\d+)/g)) assigned.set(m[1]!, m[3] ? assigned.get(m[3])! : m[2]!);
    const holders = [...assigned].filter(([, v]) => v === value).map(([k]) => k);
    expect(holders.sort()).toEqual([...s.outputs].sort());
    expect(s.outputs).toHaveLength(5);
    expect(s.outputs[0]).toMatch(/^[A-Z]{5}$/);
  });

  it('cwe: the answer is the ten most frequent words of the main list', () => {
    const s = generateSample(RULER_TASKS.cwe, 100, new Rng(2), { length: 8192 });
    const main = s.document.slice(s.document.lastIndexOf('Memorize the ones that appear most often.'));
    const counts = new Map<string, number>();
    for (const m of main.matchAll(/\d+\. ([a-z-]+)/g)) counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
    const top = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 10);
    expect(top.map(([w]) => w).sort()).toEqual([...s.outputs].sort());
    expect(top.every(([, n]) => n === 30)).toBe(true);
    expect(counts.size).toBe(100);
  });

  it('fwe: the answer is the three most frequent coded words after the dots', () => {
    const s = generateSample(RULER_TASKS.fwe, 600, new Rng(3), { length: 4096 });
    const counts = new Map<string, number>();
    for (const w of s.document.slice(s.document.indexOf('coded words. ') + 13).split(' ')) counts.set(w, (counts.get(w) ?? 0) + 1);
    const ranked = [...counts].sort((a, b) => b[1] - a[1]).map(([w]) => w);
    expect(ranked[0]).toBe('...');
    expect(ranked.slice(1, 4)).toEqual(s.outputs);
    expect(counts.get(s.outputs[0]!)!).toBeGreaterThan(counts.get(s.outputs[1]!)!);
  });
});

describe('determinism', () => {
  it('the same seed gives the same samples; another seed other ones', () => {
    for (const name of ['niah_single_2', 'vt', 'fwe'] as const) {
      const a = generateFitted(RULER_TASKS[name], 1024, 2, 42, count);
      const b = generateFitted(RULER_TASKS[name], 1024, 2, 42, count);
      const c = generateFitted(RULER_TASKS[name], 1024, 2, 43, count);
      expect(b.map((s) => s.input)).toEqual(a.map((s) => s.input));
      expect(c.map((s) => s.input)).not.toEqual(a.map((s) => s.input));
      expect(a[0]!.input).not.toBe(a[1]!.input);
    }
  });
});
