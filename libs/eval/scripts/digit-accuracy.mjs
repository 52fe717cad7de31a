#!/usr/bin/env node
// Partial credit for needle answers that RULER's string_match_all scores 0 or 1: reads the `-v` lines of
// `e2llm eval ruler` (stdin) and, for every sample whose expected answers are 7-digit numbers, compares the first
// 7-digit run of the prediction with each expected number digit by digit. Prints, per runner, task and length, the
// share of digits in the right place (chance: 10%) and of first digits right. Not a RULER metric: it shows whether a
// model that scores 0 carries any of the value, which is what training progress looks like before exact matches.
//   node apps/cli/bin/e2llm.js eval ruler ... -v 2> eval.err; node libs/eval/scripts/digit-accuracy.mjs < eval.err
import { createInterface } from 'node:readline';

const line = /^\[(\S+) (\S+) (\d+) #\d+ \d+ tokens\] expected (\[.*?\]) got (.*)$/;
const cells = new Map();
for await (const l of createInterface({ input: process.stdin })) {
  const m = line.exec(l);
  if (!m) continue;
  const [, runner, task, length, expectedJson, gotJson] = m;
  if (gotJson.startsWith('(')) continue; // not scored: '(over the window)' and other refusals
  const expected = JSON.parse(expectedJson);
  if (!expected.every((e) => /^\d{7}$/.test(e))) continue;
  let got;
  try { got = JSON.parse(gotJson); } catch { got = gotJson; }
  const digits = (String(got).match(/\d+/g) ?? []).join('');
  const key = `${runner} ${task} ${length}`;
  const c = cells.get(key) ?? { digits: 0, right: 0, first: 0, answers: 0 };
  for (const [i, e] of expected.entries()) {
    const p = digits.slice(7 * i, 7 * i + 7);
    c.answers += 1;
    c.first += p[0] === e[0] ? 1 : 0;
    for (let k = 0; k < 7; k++) { c.digits += 1; c.right += p[k] === e[k] ? 1 : 0; }
  }
  cells.set(key, c);
}
console.log('| runner | task | length | answers | digits in place | first digit |');
console.log('|---|---|---:|---:|---:|---:|');
for (const [key, c] of cells) {
  const [runner, task, length] = key.split(' ');
  console.log(`| ${runner} | ${task} | ${length} | ${c.answers} | ${(100 * c.right / c.digits).toFixed(1)}% | ${(100 * c.first / c.answers).toFixed(1)}% |`);
}
