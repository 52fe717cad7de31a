import { readFile, writeFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { E2llmClient, type BatchItem, type PublicBatch } from '@lib/client';
import { AppError } from '@lib/shared';
import { GENERATION_OPTIONS, parseCommand, printUsage, SERVER_OPTIONS } from './args.js';
import type { CliIo } from './main.js';
import { DEFAULT_API_URL, generationOverrides, positiveNumber, readUpload } from './submit.command.js';

const OPTIONS = {
  questions: { type: 'string' },
  out: { type: 'string' },
  ...SERVER_OPTIONS,
  ...GENERATION_OPTIONS,
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * `e2llm batch FILE --questions questions.jsonl`: one batch (POST /v1/batches) of every line's task over FILE, which is
 * uploaded and encoded once. A line is a batch item as the API takes it (`{"custom_id", "task", "generation"?}`) or a
 * question (`{"question": "...", "custom_id"?: "..."}`, custom_id defaulting to `q<line>`); the generation flags are
 * every item's defaults. Progress goes to stderr; the result lines, in the file's order, to stdout (or --out). Exit 0
 * when every item succeeded, 1 otherwise.
 */
export async function batchCommand(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseCommand(argv, OPTIONS);
  if (v.help) return printUsage(io);
  if (positionals.length !== 1) throw new AppError('INPUT_INVALID', 'batch takes exactly one FILE (the document)');
  if (v.questions === undefined) throw new AppError('INPUT_INVALID', 'batch needs --questions FILE.jsonl (one item or question a line)');
  const items = parseQuestions(await readText(v.questions), v.questions, generationOverrides(v));
  const pollMs = v['poll-ms'] === undefined ? 500 : positiveNumber('poll-ms', v['poll-ms']);
  const path = positionals[0]!;
  const file = await readUpload(path);

  const client = new E2llmClient({
    baseUrl: v.url ?? DEFAULT_API_URL,
    apiKey: v['api-key'],
    retry: { onRetry: ({ error, delayMs }) => io.stderr.write(`e2llm: ${error.code} (HTTP ${error.httpStatus}); retrying in ${(delayMs / 1000).toFixed(1)} s\n`) },
  });
  const created = await client.createBatch({ file, filename: basename(path), items });
  let last = '';
  const report = (b: PublicBatch) => {
    const line = render(b);
    if (line !== last) io.stderr.write(`${line}\n`);
    last = line;
  };
  report(created);
  const batch = await client.waitForBatch(created.id, { intervalMs: pollMs, onProgress: report });
  const lines = (await client.batchResults(batch.id)).sort((a, b) => a.index - b.index);
  const jsonl = lines.map((l) => `${JSON.stringify(l)}\n`).join('');
  if (v.out !== undefined) await writeFile(v.out, jsonl);
  else io.stdout.write(jsonl);
  const { succeeded, total } = batch.counts;
  if (succeeded === total) return 0;
  for (const l of lines.filter((x) => x.status !== 'succeeded')) io.stderr.write(`e2llm: item ${l.custom_id} ${l.status}${l.error ? `: ${l.error.code}: ${l.error.message}` : ''}\n`);
  return 1;
}

/** The progress line: items ended by outcome, and the batch's status. */
export function render(b: PublicBatch): string {
  const c = b.counts;
  return `batch ${b.id}: ${c.total - c.pending}/${c.total} items ended (${c.succeeded} succeeded, ${c.failed} failed, ${c.cancelled} cancelled, ${c.expired} expired) ${b.status}`;
}

/**
 * The questions file as batch items. The API checks each item (and names a bad one by its index, which is its line
 * among the non-blank lines); here only the line's JSON and the question shorthand are read.
 */
export function parseQuestions(text: string, name: string, generation: BatchItem['generation'] | undefined): BatchItem[] {
  const items: BatchItem[] = [];
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      throw new AppError('INPUT_INVALID', `${name} line ${n + 1} is not JSON: put one item ({"custom_id", "task"}) or question ({"question"}) a line`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AppError('INPUT_INVALID', `${name} line ${n + 1} is not a JSON object`);
    const line = value as Record<string, unknown>;
    const item = 'question' in line && !('task' in line) ? questionItem(line, n + 1, name) : (line as unknown as BatchItem);
    items.push(generation ? { ...item, generation: { ...generation, ...(item.generation ?? {}) } } : item);
  }
  if (items.length === 0) throw new AppError('INPUT_INVALID', `${name} holds no questions`);
  return items;
}

function questionItem(line: Record<string, unknown>, lineNo: number, name: string): BatchItem {
  const { question, custom_id, ...rest } = line;
  if (typeof question !== 'string') throw new AppError('INPUT_INVALID', `${name} line ${lineNo}: "question" must be a string`);
  return { custom_id: typeof custom_id === 'string' ? custom_id : `q${lineNo}`, task: { type: 'qa', question }, ...(rest as Pick<BatchItem, 'generation'>) };
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    throw new AppError('FILE_NOT_FOUND', `cannot read ${path}`);
  }
}
