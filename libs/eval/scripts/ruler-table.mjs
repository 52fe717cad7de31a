#!/usr/bin/env node
// The task-by-length Markdown table of docs/evaluation.md from the JSON `e2llm eval ruler --json` writes: one row per
// system and task, the mean of the 8 NIAH tasks and the niah_single_1/2/3 mean (issue 4's goal) after each system's
// rows, "over window" where no sample fitted the decoder's window.
//   node libs/eval/scripts/ruler-table.mjs docs/evaluation/ruler.json
import { readFileSync } from 'node:fs';

const run = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const systems = [['E2LLM', run.results], ...(run.baseline ? [[run.baseline.name, run.baseline.results]] : [])];
const lengths = [...new Set(run.results.map((r) => r.length))].sort((a, b) => a - b);
const label = (n) => (n >= 1024 ? `${n / 1024}k` : String(n));
const fmt = (v) => (v === null ? 'over window' : v.toFixed(1));
const mean = (rows) => (rows.some((r) => !r || r.score === null) ? null : rows.reduce((s, r) => s + r.score, 0) / rows.length);

console.log(`| system | task | ${lengths.map(label).join(' | ')} |`);
console.log(`|---|---|${lengths.map(() => '---:').join('|')}|`);
for (const [name, results] of systems) {
  const cell = (task, length) => results.find((r) => r.task === task && r.length === length);
  const tasks = [...new Set(results.map((r) => r.task))];
  for (const task of tasks) console.log(`| ${name} | ${task} | ${lengths.map((l) => fmt(cell(task, l)?.score ?? null)).join(' | ')} |`);
  const niah = tasks.filter((t) => t.startsWith('niah_'));
  const groups = [...(niah.length === 8 ? [['NIAH mean (8 tasks)', niah]] : []),
    ['niah_single_1/2/3 mean', ['niah_single_1', 'niah_single_2', 'niah_single_3']]];
  for (const [title, group] of groups) {
    if (!group.every((t) => tasks.includes(t))) continue;
    console.log(`| ${name} | **${title}** | ${lengths.map((l) => fmt(mean(group.map((t) => cell(t, l))))).join(' | ')} |`);
  }
}
