import type { ReferencePoint } from './chart.js';

/**
 * The E2LLM paper's RULER figures (shared/design/e2llm.md, "Reported results"), for its 7B model. They are
 * aggregates (NIAH is the mean over the NIAH tasks), so the chart marks them on each task they cover.
 */
export const PAPER_RULER: readonly ReferencePoint[] = [
  {
    tasks: ['niah_single_1', 'niah_single_2', 'niah_single_3', 'niah_multikey_1', 'niah_multikey_2', 'niah_multikey_3', 'niah_multivalue', 'niah_multiquery'],
    length: 8192,
    score: 60.66,
    label: 'E2LLM paper: RULER 8k NIAH 60.66',
  },
  { tasks: ['vt'], length: 4096, score: 7.2, label: 'E2LLM paper: RULER 4k VT 7.2' },
  { tasks: ['vt'], length: 32768, score: 8.6, label: 'E2LLM paper: RULER 32k VT 8.6' },
];
