import type { Metric } from './scoring.js';

/**
 * RULER's synthetic tasks as its scripts/synthetic.yaml and scripts/data/synthetic/constants.py define them
 * (NVIDIA/RULER): the task's haystack, needle types and counts, its prompt template, its answer prefix, how many
 * tokens it may generate and how it is scored.
 */
export type HaystackType = 'noise' | 'essay' | 'needle';
export type NeedleType = 'numbers' | 'words' | 'uuids';

export interface NiahConfig {
  kind: 'niah';
  haystack: HaystackType;
  keyType: NeedleType;
  valueType: NeedleType;
  /** Needle keys in the haystack (RULER num_needle_k; raised to numQueries when lower). */
  numKeys: number;
  /** Values per key (num_needle_v). */
  numValues: number;
  /** Keys asked for (num_needle_q). */
  numQueries: number;
}

export interface VtConfig {
  kind: 'vt';
  numChains: number;
  numHops: number;
}

export interface CweConfig {
  kind: 'cwe';
  /** How often each common word appears (freq_cw). */
  freqCommon: number;
  /** How often each other word appears (freq_ucw). */
  freqUncommon: number;
  /** How many common words (num_cw). */
  numCommon: number;
}

export interface FweConfig {
  kind: 'fwe';
  /** Exponent of the Zipf (zeta) distribution of word counts. */
  alpha: number;
  /** Letters per coded word. */
  codedWordLength: number;
}

export type TaskConfig = NiahConfig | VtConfig | CweConfig | FweConfig;

export interface RulerTask {
  name: RulerTaskName;
  config: TaskConfig;
  metric: Metric;
  /** RULER's tokens_to_generate: the task's max new tokens, counted in the target length. */
  maxNewTokens: number;
}

export const RULER_TASK_NAMES = [
  'niah_single_1',
  'niah_single_2',
  'niah_single_3',
  'niah_multikey_1',
  'niah_multikey_2',
  'niah_multikey_3',
  'niah_multivalue',
  'niah_multiquery',
  'vt',
  'cwe',
  'fwe',
] as const;
export type RulerTaskName = (typeof RULER_TASK_NAMES)[number];

const niah = (haystack: HaystackType, keyType: NeedleType, valueType: NeedleType, numKeys = 1, numValues = 1, numQueries = 1): NiahConfig => ({
  kind: 'niah',
  haystack,
  keyType,
  valueType,
  numKeys,
  numValues,
  numQueries,
});

const CONFIGS: Record<RulerTaskName, TaskConfig> = {
  niah_single_1: niah('noise', 'words', 'numbers'),
  niah_single_2: niah('essay', 'words', 'numbers'),
  niah_single_3: niah('essay', 'words', 'uuids'),
  niah_multikey_1: niah('essay', 'words', 'numbers', 4),
  niah_multikey_2: niah('needle', 'words', 'numbers'),
  niah_multikey_3: niah('needle', 'uuids', 'uuids'),
  niah_multivalue: niah('essay', 'words', 'numbers', 1, 4),
  niah_multiquery: niah('essay', 'words', 'numbers', 1, 1, 4),
  vt: { kind: 'vt', numChains: 1, numHops: 4 },
  cwe: { kind: 'cwe', freqCommon: 30, freqUncommon: 3, numCommon: 10 },
  fwe: { kind: 'fwe', alpha: 2.0, codedWordLength: 6 },
};

/** RULER's tokens_to_generate per task family. */
const MAX_NEW_TOKENS: Record<TaskConfig['kind'], number> = { niah: 128, vt: 30, cwe: 120, fwe: 50 };

export const RULER_TASKS: Record<RulerTaskName, RulerTask> = Object.fromEntries(
  RULER_TASK_NAMES.map((name) => [name, { name, config: CONFIGS[name], metric: 'string_match_all', maxNewTokens: MAX_NEW_TOKENS[CONFIGS[name].kind] }]),
) as Record<RulerTaskName, RulerTask>;

export function isRulerTaskName(s: string): s is RulerTaskName {
  return (RULER_TASK_NAMES as readonly string[]).includes(s);
}

/** RULER's prompt templates (constants.py), split at {context}: preamble, the question line, the answer prefix. */
export const TEMPLATES = {
  niah: {
    preamble: 'Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. I will quiz you about the {type_needle_v} afterwards.\n',
    question: '\nWhat are all the special magic {type_needle_v} for {query} mentioned in the provided text?',
    answerPrefix: ' The special magic {type_needle_v} for {query} mentioned in the provided text are',
  },
  vt: {
    preamble: 'Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n',
    question: '\nQuestion: Find all variables that are assigned the value {query} in the text above.',
    answerPrefix: ' Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are assgined the value {query}, they are: ',
  },
  cwe: {
    preamble: 'Below is a numbered list of words. In these words, some appear more often than others. Memorize the ones that appear most often.\n',
    question: '\nQuestion: What are the 10 most common words in the above list?',
    answerPrefix: ' Answer: The top 10 words that appear most often in the list are:',
  },
  fwe: {
    preamble: 'Read the following coded text and track the frequency of each coded word. Find the three most frequently appeared coded words. ',
    question: "\nQuestion: Do not provide any explanation. Please ignore the dots '....'. What are the three most frequently appeared words in the above coded text?",
    answerPrefix: ' Answer: According to the coded text above, the three most frequently appeared words are:',
  },
} as const;

/** The needle sentence. */
export const NEEDLE = 'One of the special magic {type_needle_v} for {key} is: {value}.';

/** RULER's 40 insertion depths: round(linspace(0, 100, 40)), in percent of the haystack. */
export const DEPTHS: readonly number[] = Array.from({ length: 40 }, (_, i) => roundHalfEven((i * 100) / 39));

/** numpy.round rounds halves to even; no depth of linspace(0, 100, 40) is an exact half, but keep the rule. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
