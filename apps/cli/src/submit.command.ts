import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
// A CommonJS module whose exports Node's ESM loader cannot name: imported whole.
import cliProgress, { type MultiBar, type Options, type Params, type SingleBar } from 'cli-progress';
import { ApiError, E2llmClient, type PublicJob } from '@lib/client';
import { AppError, ERROR_CODES, type GenerationParams } from '@lib/shared';
import { GENERATION_OPTIONS, generationFlags, parseCommand, printUsage, SERVER_OPTIONS, taskFromFlags } from './args.js';
import type { CliIo } from './main.js';

const OPTIONS = {
  question: { type: 'string', short: 'q' },
  task: { type: 'string' },
  instruction: { type: 'string' },
  ...SERVER_OPTIONS,
  ...GENERATION_OPTIONS,
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const DEFAULT_API_URL = 'http://127.0.0.1:8080';

/**
 * `e2llm submit FILE -q "..." --url URL`: uploads the file to a running API, follows the job's event stream with a
 * progress bar on stderr (reconnecting with Last-Event-ID when the connection drops, so nothing is missed or counted
 * twice), then prints the answer (or, with --json, the finished job). A 429 or 503 is retried after its Retry-After.
 */
export async function submitCommand(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseCommand(argv, OPTIONS);
  if (v.help) return printUsage(io);
  if (positionals.length !== 1) throw new AppError('INPUT_INVALID', 'submit takes exactly one FILE');
  const task = taskFromFlags(v.task ?? 'qa', v.question, v.instruction, (text, what) => {
    if (!text) throw new AppError('INPUT_INVALID', `--${what} is empty`);
    return text;
  });
  const generation = generationOverrides(v);
  const pollMs = v['poll-ms'] === undefined ? 250 : positiveNumber('poll-ms', v['poll-ms']);
  const path = positionals[0]!;
  const file = await readUpload(path);

  const client = new E2llmClient({
    baseUrl: v.url ?? DEFAULT_API_URL,
    apiKey: v['api-key'],
    retry: { onRetry: ({ error, delayMs }) => io.stderr.write(`e2llm: ${error.code} (HTTP ${error.httpStatus}); retrying in ${(delayMs / 1000).toFixed(1)} s\n`) },
  });
  const created = await client.createJob({ file, filename: basename(path), task, ...(generation ? { generation } : {}) });
  const bar = new ProgressBar(io.stderr);
  let job: PublicJob;
  try {
    bar.update(created);
    job = await follow(client, created, bar, io, pollMs);
    bar.update(job);
  } finally {
    bar.stop();
  }

  if (v.json) io.stdout.write(`${JSON.stringify(job)}\n`);
  if (job.status === 'succeeded') {
    if (!v.json) io.stdout.write(`${job.result?.text ?? ''}\n`);
    return 0;
  }
  const code = job.status === 'cancelled' ? 'JOB_CANCELLED' : (job.error?.code ?? 'INTERNAL');
  io.stderr.write(`e2llm: error ${code}: job ${job.id} ${job.status}${job.error ? `: ${job.error.message}` : ''}\n`);
  return ERROR_CODES[code].exitCode;
}

/**
 * Follows a job to its end through its event stream. The client reconnects a dropped stream from the last event id;
 * should the stream keep failing (a proxy that buffers or cuts event streams), polling finishes the job.
 */
async function follow(client: E2llmClient, created: PublicJob, bar: ProgressBar, io: CliIo, pollMs: number): Promise<PublicJob> {
  let job = created;
  try {
    const onReconnect = ({ lastEventId, delayMs }: { lastEventId: string | undefined; delayMs: number }) =>
      bar.note(`e2llm: the event stream dropped; resuming ${lastEventId ? `after event ${lastEventId}` : 'from the start'} in ${(delayMs / 1000).toFixed(1)} s`);
    for await (const event of client.events(created.id, { onReconnect })) {
      if (event.type === 'status') job = event.job ?? { ...job, status: event.status };
      else if (event.type === 'progress') job = { ...job, progress: event.progress };
      else continue;
      bar.update(job);
      if (event.type === 'status' && event.job && ['succeeded', 'failed', 'cancelled'].includes(event.status)) return event.job;
    }
  } catch (err) {
    if (err instanceof ApiError && err.httpStatus >= 400 && err.httpStatus < 500) throw err;
    bar.note(`e2llm: cannot follow the event stream (${(err as Error).message}); polling instead`);
  }
  return client.waitForJob(created.id, { intervalMs: pollMs, onProgress: (j) => bar.update(j) });
}

/** The bar's look, shared by the live bar and render(). */
const BAR_OPTIONS = {
  format: '[{bar}] {value}/{total} chunks ({encoded} encoded, {cached} cached) {status}',
  barCompleteChar: '#',
  barIncompleteChar: '.',
  barGlue: '',
  barsize: 30,
  emptyOnZero: true, // 0 of 0 chunks is an empty bar, not a full one
} satisfies Options;

function barState(job: PublicJob): { value: number; total: number; payload: { encoded: number; cached: number; status: string } } {
  const { chunksTotal, chunksEncoded, chunksCached } = job.progress;
  return {
    value: Math.min(chunksTotal, chunksEncoded + chunksCached),
    total: chunksTotal,
    payload: { encoded: chunksEncoded, cached: chunksCached, status: job.status },
  };
}

/**
 * On a terminal, cli-progress's bar redrawn in place on stderr; elsewhere (logs, pipes) one line per change.
 * cli-progress's own non-TTY mode writes a line every few seconds whether or not anything changed, so off a terminal
 * the lines are render()'s, written here. A MultiBar holding one bar, because only MultiBar can put a line above the
 * bar (log()); a SingleBar restores a cursor position saved before that line moved it. stop() must run: the bar
 * holds a timer.
 */
export class ProgressBar {
  private readonly multi: MultiBar | undefined;
  private bar: SingleBar | undefined;
  private last = '';

  constructor(private readonly out: CliIo['stderr']) {
    const tty = (out as { isTTY?: boolean }).isTTY === true;
    this.multi = tty
      ? new cliProgress.MultiBar({
          ...BAR_OPTIONS,
          stream: out as NodeJS.WritableStream,
          linewrap: true, // leave the terminal's wrapping alone: a Ctrl-C would skip the restore
        })
      : undefined;
  }

  update(job: PublicJob): void {
    const line = render(job);
    if (line === this.last) return;
    this.last = line;
    if (!this.multi) {
      this.out.write(`${line}\n`);
      return;
    }
    const { value, total, payload } = barState(job);
    if (!this.bar) {
      this.bar = this.multi.create(total, value, payload);
      return;
    }
    this.bar.setTotal(total);
    this.bar.update(value, payload);
  }

  /** A line of its own above the bar. */
  note(line: string): void {
    if (this.multi) this.multi.log(`${line}\n`);
    else this.out.write(`${line}\n`);
  }

  /** On a terminal: writes the notes not yet drawn, the last state, then a newline, and ends the bar's timer. */
  stop(): void {
    if (!this.multi) return;
    this.multi.update(); // MultiBar.stop() alone would drop the log() lines its timer has not drawn yet
    this.multi.stop();
  }
}

/** The bar's line for a job, as cli-progress formats it. */
export function render(job: PublicJob, width = BAR_OPTIONS.barsize): string {
  const { value, total, payload } = barState(job);
  const options = {
    ...BAR_OPTIONS,
    barsize: width,
    // What cli-progress derives from the characters when it builds a bar.
    barCompleteString: BAR_OPTIONS.barCompleteChar.repeat(width + 1),
    barIncompleteString: BAR_OPTIONS.barIncompleteChar.repeat(width + 1),
    autopaddingChar: '',
  };
  const params = { progress: total > 0 ? value / total : 0, value, total, eta: 0, startTime: null, stopTime: null, maxWidth: 0 };
  return cliProgress.Format.Formatter(options, params as unknown as Params, payload);
}

/** Only the flags given: the server applies its defaults and limits to the rest. */
export function generationOverrides(v: Record<string, unknown>): Partial<GenerationParams> | undefined {
  const g = Object.fromEntries(Object.entries(generationFlags(v)).filter(([, value]) => value !== undefined)) as Partial<GenerationParams>;
  return Object.keys(g).length > 0 ? g : undefined;
}

export function positiveNumber(flag: string, raw: string): number {
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n <= 0) throw new AppError('INPUT_INVALID', `--${flag} must be a positive number, got "${raw}"`);
  return n;
}

export async function readUpload(path: string): Promise<Uint8Array> {
  const s = await stat(path).catch(() => null);
  if (!s) throw new AppError('FILE_NOT_FOUND', `no such file: ${path}`);
  if (!s.isFile()) throw new AppError('FILE_NOT_FOUND', `not a regular file: ${path}`);
  return readFile(path);
}
