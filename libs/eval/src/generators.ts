import { NOISE, commonWordsVocabulary, essayText, splitSentences } from './haystack.js';
import { Rng } from './rng.js';
import { DEPTHS, NEEDLE, TEMPLATES, type CweConfig, type FweConfig, type NeedleType, type NiahConfig, type RulerTask, type VtConfig } from './ruler-tasks.js';
import { ADJECTIVES, NOUNS } from './words.js';

/** One generated sample: RULER's full input, and the same split into the document and the question a model is asked. */
export interface RulerSample {
  /** RULER's input: preamble, context, question line and answer prefix. Its tokens plus maxNewTokens make the length. */
  input: string;
  /** Everything before the question line: what a model reads as its document. */
  document: string;
  /** The question line without RULER's "Question: " label, for a prompt that adds its own. */
  question: string;
  /** What the answer must contain (every item, for string_match_all). */
  outputs: string[];
  /** The amount of haystack used (essay words, noise sentences, distractor needles or list words). */
  amount: number;
  /** NIAH only: each needle and the depth (0-100, percent of the haystack) it was put at. */
  needles?: { text: string; depth: number }[];
}

export interface GenerateOptions {
  /** The target length in tokens; cwe and fwe change their recipe with it, as RULER does. */
  length: number;
  /** NIAH only: put the needles at these depths instead of drawing them (tests, depth sweeps). */
  depths?: number[];
  /** vt only: noise sentences in the one-shot example (fitted to 500 tokens by the caller). */
  vtExampleNoises?: number;
}

/** The smallest amount of haystack a task can be built with. */
export function minAmount(task: RulerTask): number {
  const c = task.config;
  switch (c.kind) {
    case 'niah':
      return c.haystack === 'essay' ? 20 : 1;
    case 'vt':
      return c.numHops + 1;
    case 'cwe':
      return c.numCommon + 1;
    case 'fwe':
      return 8;
  }
}

/** The largest amount a task can take (cwe cannot repeat words), or Infinity. */
export function maxAmount(task: RulerTask): number {
  return task.config.kind === 'cwe' ? commonWordsVocabulary().length : Number.POSITIVE_INFINITY;
}

export function generateSample(task: RulerTask, amount: number, rng: Rng, opts: GenerateOptions): RulerSample {
  const c = task.config;
  switch (c.kind) {
    case 'niah':
      return generateNiah(c, amount, rng, opts);
    case 'vt':
      return generateVt(c, amount, rng, opts.vtExampleNoises ?? 10);
    case 'cwe':
      return generateCwe(c, amount, rng, opts.length);
    case 'fwe':
      return generateFwe(c, amount, rng, opts.length);
  }
}

function assemble(preamble: string, context: string, questionLine: string, answerPrefix: string, outputs: string[], amount: number, before = ''): RulerSample {
  const document = `${before}${preamble}${context}`;
  return {
    input: `${document}${questionLine}${answerPrefix}`,
    document,
    question: questionLine.replace(/^\n(Question: )?/, ''),
    outputs,
    amount,
  };
}

// ---------------------------------------------------------------------------------------------- needle in a haystack

const KEY_WORDS = ADJECTIVES.flatMap((a) => NOUNS.map((n) => `${a}-${n}`));

export function randomNeedleValue(type: NeedleType, rng: Rng): string {
  switch (type) {
    case 'numbers':
      return String(rng.int(1_000_000, 9_999_999));
    case 'words':
      return rng.choice(KEY_WORDS);
    case 'uuids':
      return rng.uuid4();
  }
}

function fill(template: string, vars: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => vars[k] ?? m);
}

function generateNiah(c: NiahConfig, amount: number, rng: Rng, opts: GenerateOptions): RulerSample {
  const numKeys = Math.max(c.numKeys, c.numQueries);
  const keys: string[] = [];
  const values: string[][] = [];
  const needles: string[] = [];
  for (let k = 0; k < numKeys; k++) {
    let key = randomNeedleValue(c.keyType, rng);
    while (keys.includes(key)) key = randomNeedleValue(c.keyType, rng);
    keys.push(key);
    const vs: string[] = [];
    for (let v = 0; v < c.numValues; v++) {
      let value = randomNeedleValue(c.valueType, rng);
      while (vs.includes(value)) value = randomNeedleValue(c.valueType, rng);
      vs.push(value);
      needles.push(fill(NEEDLE, { type_needle_v: c.valueType, key, value }));
    }
    values.push(vs);
  }
  rng.shuffle(needles);
  if (opts.depths && opts.depths.length !== needles.length) throw new Error(`${opts.depths.length} depths for ${needles.length} needles`);

  let context: string;
  const placed: { text: string; depth: number }[] = [];
  if (c.haystack === 'essay') {
    // RULER: needles go between sentences, at depths drawn from the 40 without replacement, in sorted order.
    const sents = splitSentences(essayText(amount));
    const depths = (opts.depths ?? rng.sample(DEPTHS, needles.length)).slice().sort((a, b) => a - b);
    const positions = depths.map((d) => Math.floor((sents.length * d) / 100));
    const parts: string[] = [];
    let last = 0;
    positions.forEach((pos, i) => {
      if (pos > last) parts.push(sents.slice(last, pos).join(' '));
      parts.push(needles[i]!);
      placed.push({ text: needles[i]!, depth: depths[i]! });
      last = pos;
    });
    if (last < sents.length) parts.push(sents.slice(last).join(' '));
    context = parts.join(' ');
  } else {
    // RULER: the noise sentence repeated, or other needles with random keys and values, one per line; the needles
    // go at random lines. Distractor keys never equal a real key, so every question has one right answer.
    const sentences =
      c.haystack === 'noise'
        ? Array.from({ length: amount }, () => NOISE)
        : Array.from({ length: amount }, () => {
            let key = randomNeedleValue(c.keyType, rng);
            while (keys.includes(key)) key = randomNeedleValue(c.keyType, rng);
            return fill(NEEDLE, { type_needle_v: c.valueType, key, value: randomNeedleValue(c.valueType, rng) });
          });
    const indexes = (opts.depths ? opts.depths.map((d) => Math.min(amount, Math.floor((amount * d) / 100))) : rng.sampleRange(amount, needles.length))
      .map((index, i) => ({ index, needle: needles[i]! }))
      .sort((a, b) => b.index - a.index);
    for (const { index, needle } of indexes) sentences.splice(index, 0, needle);
    for (const { index, needle } of indexes.reverse()) placed.push({ text: needle, depth: (100 * index) / amount });
    context = sentences.join('\n');
  }

  const queryIdx = rng.sampleRange(numKeys, c.numQueries);
  const queries = queryIdx.map((i) => keys[i]!);
  const answers = queryIdx.flatMap((i) => values[i]!);
  const query = queries.length > 1 ? `${queries.slice(0, -1).join(', ')}, and ${queries[queries.length - 1]!}` : queries[0]!;

  let t: { preamble: string; question: string; answerPrefix: string } = TEMPLATES.niah;
  let type: string = c.valueType;
  if (c.numQueries * c.numValues === 1) {
    // RULER's singular wording (str.replace on the whole template).
    const singular = (s: string) => s.replaceAll('Some', 'A').replaceAll('are all', 'is').replaceAll('are', 'is').replaceAll('answers', 'answer');
    t = { preamble: singular(t.preamble), question: singular(t.question), answerPrefix: singular(t.answerPrefix) };
    type = type.slice(0, -1);
  }
  const vars = { type_needle_v: type, query };
  const sample = assemble(fill(t.preamble, vars), context, fill(t.question, vars), fill(t.answerPrefix, vars), answers, amount);
  return { ...sample, needles: placed };
}

// ------------------------------------------------------------------------------------------------- variable tracking

function variableChains(c: VtConfig, rng: Rng, isExample: boolean): { vars: string[][]; chains: string[][] } {
  const letters = isExample ? 3 : 5;
  const hops = isExample ? Math.min(10, c.numHops) : c.numHops;
  const need = (hops + 1) * c.numChains;
  const all: string[] = [];
  while (all.length < need) {
    const name = Array.from({ length: letters }, () => String.fromCharCode(65 + rng.int(0, 25))).join('');
    if (!all.includes(name)) all.push(name);
  }
  const vars: string[][] = [];
  const chains: string[][] = [];
  for (let i = 0; i < all.length; i += hops + 1) {
    const vs = all.slice(i, i + hops + 1);
    vars.push(vs);
    // numpy's randint(10000, 99999) excludes the upper bound.
    const chain = [`VAR ${vs[0]!} = ${rng.int(10000, 99998)}`];
    for (let j = 0; j < hops; j++) chain.push(`VAR ${vs[j + 1]!} = VAR ${vs[j]!} `);
    chains.push(chain);
  }
  return { vars, chains };
}

function vtContext(c: VtConfig, noises: number, rng: Rng, isExample: boolean): { context: string; value: string; answer: string[]; hops: number } {
  const { vars, chains } = variableChains(c, rng, isExample);
  const sentences = Array.from({ length: Math.max(noises, chains[0]!.length) }, () => `${NOISE}\n`);
  for (const chain of chains) {
    const positions = rng.sampleRange(sentences.length, chain.length).sort((a, b) => a - b);
    positions.forEach((p, j) => sentences.splice(p + j, 0, chain[j]!));
  }
  const context = sentences.join(' ').replaceAll('. \n', '.\n');
  const value = chains[0]![0]!.split('=').pop()!.trim();
  return { context, value, answer: vars[0]!, hops: vars[0]!.length - 1 };
}

function generateVt(c: VtConfig, noises: number, rng: Rng, exampleNoises: number): RulerSample {
  const t = TEMPLATES.vt;
  // RULER prepends a one-shot example (3-letter names, fitted to 500 tokens) with its answer filled in.
  const ex = vtContext(c, exampleNoises, rng, true);
  const exVars = { query: ex.value, num_v: String(ex.hops + 1) };
  const example = `${t.preamble}${ex.context}${fill(t.question, exVars)}${fill(t.answerPrefix, exVars)}${ex.answer.join(' ')}\n\n`;
  const main = vtContext(c, noises, rng, false);
  const vars = { query: main.value, num_v: String(c.numHops + 1) };
  return assemble(t.preamble, main.context, fill(t.question, vars), fill(t.answerPrefix, vars), main.answer, noises, example);
}

/** The vt one-shot example alone, for fitting its noise to RULER's 500 tokens. */
export function vtExampleText(c: VtConfig, noises: number, rng: Rng): string {
  const t = TEMPLATES.vt;
  const ex = vtContext(c, noises, rng, true);
  const exVars = { query: ex.value, num_v: String(ex.hops + 1) };
  return `${t.preamble}${ex.context}${fill(t.question, exVars)}${fill(t.answerPrefix, exVars)}${ex.answer.join(' ')}`;
}

// ---------------------------------------------------------------------------------------------- common words (cwe)

function cweList(words: readonly string[], numWords: number, common: number, uncommon: number, numCommon: number, rng: Rng): { context: string; answer: string[] } {
  const full = rng.sample(words, numWords);
  const cw = full.slice(0, numCommon);
  const ucw = full.slice(numCommon);
  const list: string[] = [];
  for (let r = 0; r < common; r++) list.push(...cw);
  for (let r = 0; r < uncommon; r++) list.push(...ucw);
  rng.shuffle(list);
  return { context: list.map((w, i) => `${i + 1}. ${w}`).join(' '), answer: cw };
}

function generateCwe(c: CweConfig, numWords: number, rng: Rng, length: number): RulerSample {
  const t = TEMPLATES.cwe;
  const words = commonWordsVocabulary();
  // RULER: below 4096 tokens, fewer repeats (example 3/1 of 20 words, main 6/1); else example 10/3 of 40, main 30/3.
  const small = length < 4096;
  const ex = small ? cweList(words, 20, 3, 1, c.numCommon, rng) : cweList(words, 40, 10, 3, c.numCommon, rng);
  const main = small ? cweList(words, numWords, 6, 1, c.numCommon, rng) : cweList(words, numWords, c.freqCommon, c.freqUncommon, c.numCommon, rng);
  const example = `${t.preamble}${ex.context}${t.question}${t.answerPrefix} ${ex.answer.map((w, i) => `${i + 1}. ${w}`).join(' ')}\n`;
  return assemble(t.preamble, main.context, t.question, t.answerPrefix, main.answer, numWords, example);
}

// -------------------------------------------------------------------------------------------- frequent words (fwe)

/** Riemann zeta for s > 1: direct sum plus the Euler-Maclaurin tail, ample for the normalising constant. */
export function zeta(s: number): number {
  const n = 1000;
  let sum = 0;
  for (let k = 1; k < n; k++) sum += k ** -s;
  return sum + n ** (1 - s) / (s - 1) + 0.5 * n ** -s + (s * n ** (-s - 1)) / 12;
}

function generateFwe(c: FweConfig, numWords: number, rng: Rng, length: number): RulerSample {
  const t = TEMPLATES.fwe;
  const vocabSize = Math.max(4, Math.floor(length / 50));
  const set = new Set<string>();
  while (set.size < vocabSize) set.add(Array.from({ length: c.codedWordLength }, () => String.fromCharCode(97 + rng.int(0, 25))).join(''));
  const vocab = rng.shuffle([...set].sort());
  // The most frequent "word" is noise, as in RULER; the answer is the next three.
  vocab[0] = '...';
  const z = zeta(c.alpha);
  const words: string[] = [];
  vocab.forEach((w, i) => {
    const count = Math.floor((numWords * (i + 1) ** -c.alpha) / z);
    for (let r = 0; r < count; r++) words.push(w);
  });
  rng.shuffle(words);
  return assemble(t.preamble, words.join(' '), t.question, t.answerPrefix, vocab.slice(1, 4), numWords);
}
