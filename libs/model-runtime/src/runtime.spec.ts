import { describe, expect, it } from 'vitest';
import { promptParts } from './prompt.js';
import { argmax, createRng, pickToken } from './sampling.js';

describe('sampling', () => {
  const logits = Float32Array.from([0.1, 2.5, 2.4, -1, 0]);

  it('is greedy at temperature 0', () => {
    expect(pickToken(logits, { temperature: 0, topK: 0, topP: 1 }, createRng(1))).toBe(1);
    expect(argmax([3, 5, 5])).toBe(1);
  });

  it('restricts to topK and to the topP nucleus', () => {
    const rng = createRng(3);
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) seen.add(pickToken(logits, { temperature: 1, topK: 2, topP: 1 }, rng));
    expect([...seen].sort()).toEqual([1, 2]);
    const nucleus = new Set<number>();
    for (let i = 0; i < 500; i++) nucleus.add(pickToken(logits, { temperature: 1, topK: 0, topP: 0.3 }, rng));
    expect([...nucleus]).toEqual([1]);
  });

  it('samples in proportion to the tempered probabilities and repeats with the same seed', () => {
    const draw = (seed: number) => {
      const rng = createRng(seed);
      return Array.from({ length: 4000 }, () => pickToken(Float32Array.from([0, Math.log(3)]), { temperature: 1, topK: 0, topP: 1 }, rng));
    };
    const a = draw(42);
    expect(draw(42)).toEqual(a);
    const share = a.filter((t) => t === 1).length / a.length;
    expect(share).toBeGreaterThan(0.72);
    expect(share).toBeLessThan(0.78);
  });
});

describe('promptParts', () => {
  const prompt = {
    placeholder: '<|context|>',
    templates: { qa: 'Doc:<|context|>\nQ: {question}\nA:', summarize: 'Doc:<|context|>\nSummary:', reconstruct: '<|context|>', instruct: 'Doc:<|context|>\n{instruction}\n' },
    chunking: { chunkChars: 512, overlapChars: 0 },
  };

  it('fills the question after splitting, so injected placeholders stay text', () => {
    expect(promptParts(prompt, { type: 'qa', question: 'why <|context|> {instruction}?' })).toEqual({
      prefix: 'Doc:',
      suffix: '\nQ: why <|context|> {instruction}?\nA:',
    });
    expect(promptParts(prompt, { type: 'instruct', instruction: 'List names.' }).suffix).toBe('\nList names.\n');
  });
});

describe('TextTokenizer', () => {
  it('decodes an empty answer (EOS first) to the empty string', async () => {
    const { TextTokenizer } = await import('./tokenizer.js');
    const { BUNDLED_MODEL_PATH } = await import('@lib/shared');
    const tok = await TextTokenizer.load(`${BUNDLED_MODEL_PATH}/tokenizer.json`);
    expect(tok.decode([])).toBe('');
    expect(tok.decode(tok.encode('Hello world'))).toBe('Hello world');
  });
});

describe('TextStream', () => {
  /** The bundled tokenizer: a word's first token carries its leading space, as real BPE vocabularies do. */
  async function stream(stop: string[] = []) {
    const { TextTokenizer } = await import('./tokenizer.js');
    const { TextStream } = await import('./decoder.js');
    const { BUNDLED_MODEL_PATH } = await import('@lib/shared');
    const tok = await TextTokenizer.load(`${BUNDLED_MODEL_PATH}/tokenizer.json`);
    const deltas: string[] = [];
    return { tok, deltas, text: new TextStream(tok, stop, (d) => deltas.push(d)) };
  }

  it('starts the answer at its first non-space character, streamed and final alike', async () => {
    const { tok, deltas, text } = await stream();
    const ids = tok.encode('  Ada Lindqvist kept the lamp.');
    expect(tok.decode(ids).startsWith(' ')).toBe(true);
    const fed: number[] = [];
    for (const id of ids) {
      fed.push(id);
      text.push([...fed]);
    }
    const answer = text.finish(fed);
    expect(answer).toBe('Ada Lindqvist kept the lamp.');
    expect(deltas.join('')).toBe(answer);
    expect(deltas[0]!.startsWith(' ')).toBe(false);
  });

  it('keeps inner and trailing spaces, and cuts at a stop sequence counted from the trimmed start', async () => {
    const { tok, deltas, text } = await stream(['\n']);
    const ids = tok.encode('\n Forty years \nQuestion:');
    const fed: number[] = [];
    let stopped = false;
    for (const id of ids) {
      fed.push(id);
      if ((stopped = text.push([...fed]))) break;
    }
    expect(stopped).toBe(true);
    const answer = text.finish(fed);
    expect(answer).toBe('Forty years ');
    expect(deltas.join('')).toBe(answer);
  });
});
