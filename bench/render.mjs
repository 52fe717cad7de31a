// node bench/render.mjs: writes docs/benchmarks.md and the chart again from docs/benchmarks/results.json (and
// profile.json when present), measuring nothing: for a change to the report's wording.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderReport } from './report.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const read = (f) => JSON.parse(readFileSync(join(root, 'docs/benchmarks', f), 'utf8'));
let profile = null;
try {
  profile = read('profile.json');
} catch {
  /* none */
}
const { markdown, svg } = renderReport(read('results.json'), profile);
writeFileSync(join(root, 'docs/benchmarks/ttft.svg'), svg);
writeFileSync(join(root, 'docs/benchmarks.md'), markdown);
