import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { PAPER_RULER, RULER_TASK_NAMES, isRulerTaskName, rulerChartSvg, runRuler, type EvalRunner, type RulerResult, type RulerTaskName } from '@lib/eval';
import { E2llmModel, rankByScore, scoresFor } from '@lib/model-runtime';
import { AppError, EVIDENCE_SCORERS, EXPAND_DEFAULT_CHUNKS, EXPAND_MAX_CHUNKS, GenerationParams, loadConfig } from '@lib/shared';
import { parseCommand } from './args.js';
import type { CliIo } from './main.js';

const OPTIONS = {
  tasks: { type: 'string' },
  lengths: { type: 'string' },
  samples: { type: 'string' },
  seed: { type: 'string' },
  baseline: { type: 'string' },
  expand: { type: 'string' },
  model: { type: 'string' },
  json: { type: 'boolean' },
  chart: { type: 'string' },
  verbose: { type: 'boolean', short: 'v' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const EVAL_USAGE = `Usage: e2llm eval ruler [options]

RULER's synthetic tasks, generated at each length with the decoder's tokenizer, answered through the same
runtime as "e2llm ask" (greedy, each task's own max new tokens) and scored on RULER's 0-100 scale.

  --tasks a,b,...          default: all (${RULER_TASK_NAMES.join(', ')})
  --lengths N,N,...        target lengths in tokens (default 4096,8192,16384,32768,65536,131072)
  --samples N              samples per task and length (default 10)
  --seed S                 sample seed (default 42); the same seed gives the same samples
  --expand K[,K...]        evidence chunks read as raw tokens (default ${EXPAND_DEFAULT_CHUNKS}; 0: the compressed path
                           alone); several values run each on the same samples, side by side
  --baseline full-context  also run the decoder on the raw tokens (over the window: reported, not scored)
  --model DIR              model package folder (default: MODEL_PATH, else the bundled model)
  --json                   print {model, baseline?, results} as JSON
  --chart FILE.svg         write a chart of score by length per task
  -v, --verbose            print each prediction to stderr
`;

const DEFAULT_LENGTHS = [4096, 8192, 16384, 32768, 65536, 131072];

export async function evalCommand(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseCommand(argv, OPTIONS);
  if (v.help) {
    io.stdout.write(EVAL_USAGE);
    return 0;
  }
  if (positionals.length !== 1 || positionals[0] !== 'ruler') throw new AppError('INPUT_INVALID', 'eval takes one benchmark: e2llm eval ruler [options]');
  const tasks = parseTasks(v.tasks);
  const lengths = v.lengths === undefined ? DEFAULT_LENGTHS : parseList(v.lengths, '--lengths').map((n) => positiveInt(n, '--lengths'));
  const samples = v.samples === undefined ? 10 : positiveInt(v.samples, '--samples');
  const seed = v.seed === undefined ? 42 : nonNegativeInt(v.seed, '--seed');
  if (v.baseline !== undefined && v.baseline !== 'full-context') throw new AppError('INPUT_INVALID', `unknown --baseline "${v.baseline}" (only full-context)`);
  if (v.chart !== undefined && !v.chart.endsWith('.svg')) throw new AppError('INPUT_INVALID', '--chart writes SVG: give a FILE.svg');

  const expands = v.expand === undefined ? [EXPAND_DEFAULT_CHUNKS] : parseList(v.expand, '--expand').map((k) => expandChunks(k));

  const config = loadConfig(io.env, { modelPath: v.model });
  const model = await E2llmModel.load(config);
  try {
    const params = (maxNewTokens: number, chunks: number) => GenerationParams.parse({ maxNewTokens, temperature: 0, expand: { chunks } });
    const runners: Record<string, EvalRunner> = {};
    for (const k of expands) {
      runners[runnerName(k)] = {
        answer: async (s, maxNewTokens) => {
          const r = await model.ask(s.document, { type: 'qa', question: s.question }, params(maxNewTokens, k));
          const { chunks, scores } = r.grounding;
          const topChunks = Object.fromEntries(
            EVIDENCE_SCORERS.map((scorer) => {
              const ranked = scoresFor(scorer, scores, chunks.length);
              const top = ranked ? rankByScore(ranked)[0] : undefined;
              return [scorer, top === undefined ? null : chunks[top]!.text];
            }).filter(([scorer]) => scorer !== 'attention' || scores.attention !== undefined),
          );
          return { text: r.answer, topChunks };
        },
      };
    }
    if (v.baseline) {
      runners[v.baseline] = {
        answer: async (s, maxNewTokens) => ({
          text: (await model.askFullContext(s.document, { type: 'qa', question: s.question }, params(maxNewTokens, 0))).answer,
        }),
      };
    }
    const tok = model.decoder.tokenizer;
    const byRunner = await runRuler({
      tasks,
      lengths,
      samples,
      seed,
      countTokens: (text) => tok.encode(text).length,
      runners,
      onSample: (e) => {
        if (!v.verbose) return;
        const pred = e.prediction === null ? '(over the window)' : JSON.stringify(e.prediction.slice(0, 200));
        io.stderr.write(`[${e.runner} ${e.task} ${e.length} #${e.index} ${e.tokens} tokens] expected ${JSON.stringify(e.outputs)} got ${pred}\n`);
      },
    });
    const m = model.pkg.manifest;
    const report = {
      model: { name: m.name, version: m.version, path: config.modelPath, decoderWindow: model.decoder.window },
      seed,
      evidenceScorer: config.evidenceScorer,
      ...(v.baseline ? { baseline: { name: v.baseline, results: byRunner[v.baseline]! } } : {}),
      /** The first --expand value's results; `expansions` has each value's. */
      results: byRunner[runnerName(expands[0]!)]!,
      expansions: expands.map((k) => ({ expand: k, results: byRunner[runnerName(k)]! })),
    };
    if (v.chart !== undefined) {
      await mkdir(dirname(v.chart), { recursive: true });
      const series = report.expansions.map((e) => ({ name: `E2LLM (${m.name} ${m.version}), expand ${e.expand}`, results: e.results }));
      if (v.baseline) series.push({ name: `${v.baseline} baseline (same decoder, raw tokens)`, results: byRunner[v.baseline]! });
      const svg = rulerChartSvg(
        series.map((s, i) => ({ ...s, dashed: i > 0 })),
        { title: `RULER synthetic tasks: ${m.name} ${m.version}, ${samples} samples per point, seed ${seed}`, references: PAPER_RULER },
      );
      await writeFile(v.chart, svg);
    }
    if (v.json) io.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else io.stdout.write(table(byRunner, lengths, tasks));
  } finally {
    await model.release();
  }
  return 0;
}

function runnerName(expand: number): string {
  return `e2llm/expand=${expand}`;
}

function expandChunks(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > EXPAND_MAX_CHUNKS) throw new AppError('INPUT_INVALID', `--expand takes integers from 0 to ${EXPAND_MAX_CHUNKS}, got "${raw}"`);
  return n;
}

function parseTasks(raw: string | undefined): RulerTaskName[] {
  if (raw === undefined) return [...RULER_TASK_NAMES];
  const names = parseList(raw, '--tasks');
  for (const n of names) {
    if (!isRulerTaskName(n)) throw new AppError('INPUT_INVALID', `unknown task "${n}" (one of ${RULER_TASK_NAMES.join(', ')})`);
  }
  return names as RulerTaskName[];
}

function parseList(raw: string, flag: string): string[] {
  const items = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new AppError('INPUT_INVALID', `${flag} is empty`);
  return items;
}

function positiveInt(raw: string, flag: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new AppError('INPUT_INVALID', `${flag} takes positive integers, got "${raw}"`);
  return n;
}

function nonNegativeInt(raw: string, flag: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 2 ** 32 - 1) throw new AppError('INPUT_INVALID', `${flag} takes an integer from 0 to 2^32-1, got "${raw}"`);
  return n;
}

/** A plain-text table: one row per runner and task, one column per length. */
function table(byRunner: Record<string, RulerResult[]>, lengths: readonly number[], tasks: readonly RulerTaskName[]): string {
  const cell = (r: RulerResult | undefined) => (!r ? '-' : r.overWindow ? 'over window' : `${r.score!.toFixed(2)}${r.overWindowSamples ? ` (${r.overWindowSamples} over)` : ''}`);
  const lines = [['system', 'task', ...lengths.map(String)].join('\t')];
  for (const [runner, results] of Object.entries(byRunner)) {
    for (const task of tasks) lines.push([runner, task, ...lengths.map((l) => cell(results.find((r) => r.task === task && r.length === l)))].join('\t'));
  }
  return `${lines.join('\n')}\n`;
}
