#!/usr/bin/env node
// The task-by-length Markdown tables of docs/evaluation.md from the JSON `e2llm eval ruler --json` writes: one row per
// system and task (E2LLM at each --expand value, then the baseline), the mean of the 8 NIAH tasks and the
// niah_single_1/2/3 mean after each system's rows, "over window" where no sample fitted the decoder's window; then
// evidence precision@1 by scorer (the chunk each scorer ranked first holds the needle), for each --expand value.
//   node libs/eval/scripts/ruler-table.mjs docs/evaluation/ruler.json
import { readFileSync } from 'node:fs';

const run = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const e2llm = run.expansions ? run.expansions.map((e) => [`E2LLM, expand ${e.expand}`, e.results]) : [['E2LLM', run.results]];
const systems = [...e2llm, ...(run.baseline ? [[run.baseline.name, run.baseline.results]] : [])];
const lengths = [...new Set(run.results.map((r) => r.length))].sort((a, b) => a - b);
const label = (n) => (n >= 1024 ? `${n / 1024}k` : String(n));
const fmt = (v) => (v === null ? 'over window' : v === undefined ? '' : v.toFixed(1));
const mean = (rows) => (rows.some((r) => !r || r.score === null) ? null : rows.reduce((s, r) => s + r.score, 0) / rows.length);

console.log(`| system | task | ${lengths.map(label).join(' | ')} |`);
console.log(`|---|---|${lengths.map(() => '---:').join('|')}|`);
for (const [name, results] of systems) {
  const cell = (task, length) => results.find((r) => r.task === task && r.length === length);
  const tasks = [...new Set(results.map((r) => r.task))];
  for (const task of tasks) console.log(`| ${name} | ${task} | ${lengths.map((l) => fmt(cell(task, l) ? cell(task, l).score : undefined)).join(' | ')} |`);
  const niah = tasks.filter((t) => t.startsWith('niah_'));
  const groups = [...(niah.length === 8 ? [['NIAH mean (8 tasks)', niah]] : []),
    ['niah_single_1/2/3 mean', ['niah_single_1', 'niah_single_2', 'niah_single_3']]];
  for (const [title, group] of groups) {
    if (!group.every((t) => tasks.includes(t))) continue;
    if (!lengths.every((l) => group.every((t) => cell(t, l)))) continue;
    console.log(`| ${name} | **${title}** | ${lengths.map((l) => fmt(mean(group.map((t) => cell(t, l))))).join(' | ')} |`);
  }
}

const withEvidence = e2llm.filter(([, results]) => results.some((r) => r.evidencePrecisionAt1));
if (withEvidence.length > 0) {
  console.log('');
  console.log(`| evidence precision@1 (%) | task | scorer | ${lengths.map(label).join(' | ')} |`);
  console.log(`|---|---|---|${lengths.map(() => '---:').join('|')}|`);
  for (const [name, results] of withEvidence) {
    const tasks = [...new Set(results.filter((r) => r.evidencePrecisionAt1).map((r) => r.task))];
    const scorers = [...new Set(results.flatMap((r) => Object.keys(r.evidencePrecisionAt1 ?? {})))];
    for (const task of tasks) {
      for (const scorer of scorers) {
        const p = (l) => results.find((r) => r.task === task && r.length === l)?.evidencePrecisionAt1?.[scorer];
        console.log(`| ${name} | ${task} | ${scorer} | ${lengths.map((l) => fmt(p(l))).join(' | ')} |`);
      }
    }
  }
}
