import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ADJECTIVES, NOUNS, VERBS } from './words.js';

/**
 * The essay haystack's prose: paragraphs of the Vim user and reference manuals (Open Publication License v1.0),
 * extracted by scripts/extract-prose.py. RULER uses Paul Graham's essays, which cannot be fetched here.
 * The path is the same from src/ (tests) and dist/ (built), both one level under libs/eval.
 */
export const ESSAY_PATH = fileURLToPath(new URL('../data/vim-manual-prose.txt', import.meta.url));

/** RULER's noise haystack unit (type_haystack "noise"/"repeat") and variable tracking's noise. */
export const NOISE = 'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.';

let essayWords: string[] | undefined;
let cweWords: string[] | undefined;

/** The essay as a list of words, whitespace collapsed (RULER: re.sub(r'\s+', " ", essay).split(" ")). */
export function essayWordList(): readonly string[] {
  essayWords ??= readFileSync(ESSAY_PATH, 'utf8').replace(/\s+/g, ' ').trim().split(' ');
  return essayWords;
}

/**
 * The first n words of the essay. Where n is longer than the essay, it starts over: RULER caps the haystack at
 * the essay's length instead, which would make the longest samples shorter than asked.
 */
export function essayText(n: number): string {
  const words = essayWordList();
  if (n <= words.length) return words.slice(0, n).join(' ');
  const parts: string[] = [];
  for (let left = n; left > 0; left -= words.length) parts.push(words.slice(0, Math.min(left, words.length)).join(' '));
  return parts.join(' ');
}

/**
 * Splits text into sentences at ., ! or ? followed by white space and an upper-case letter, digit or quote:
 * a stand-in for NLTK's sent_tokenize, which RULER uses to insert needles between sentences.
 */
export function splitSentences(text: string): string[] {
  return text
    .trim()
    .split(/(?<=[.!?]["')\]]?)\s+(?=["'(\[]?[A-Z0-9])/)
    .filter((s) => s.length > 0);
}

/** The common-words task's vocabulary: our adjectives, nouns and verbs, plus the distinct plain words of the essay. */
export function commonWordsVocabulary(): readonly string[] {
  if (!cweWords) {
    const set = new Set<string>([...NOUNS, ...ADJECTIVES, ...VERBS]);
    for (const w of essayWordList()) {
      const m = /^[a-z]{4,12}$/.exec(w);
      if (m) set.add(m[0]);
    }
    cweWords = [...set].sort();
  }
  return cweWords;
}
