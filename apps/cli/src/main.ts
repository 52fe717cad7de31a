import { AppError, ERROR_CODES, toAppError } from '@lib/shared';
import { askCommand } from './ask.command.js';
import { batchCommand } from './batch.command.js';
import { deleteCommand } from './delete.command.js';
import { evalCommand } from './eval.command.js';
import { serveCommand } from './serve.command.js';
import { submitCommand } from './submit.command.js';

export interface CliIo {
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  env: Record<string, string | undefined>;
}

export const USAGE = `Usage:
  e2llm ask FILE --question "..." [options]    answer from a long document, every stage in-process
  e2llm submit FILE -q "..." --url URL [options]
                                               send a document to a running API: progress bar, then the answer
                                               (a dropped event stream resumes; 429/503 wait for Retry-After)
  e2llm delete ID... --url URL                 delete jobs (job_...) and documents (doc_..., with their jobs) from a
                                               running API; a running job is cancelled first
  e2llm batch FILE --questions Q.jsonl --url URL
                                               many questions over one document in one batch: FILE encoded
                                               once, each line of Q.jsonl one item; result lines (JSONL) on stdout
  e2llm serve                                  API and both workers in one process (npm start)
  e2llm eval ruler [options]                   RULER's synthetic tasks by length (e2llm eval --help)
  e2llm api | encoder-worker | decoder-worker  one role, for scale-out

Options for ask:
  -q, --question TEXT        the question (task qa, the default)
  --task qa|summarize|reconstruct|instruct
  --instruction TEXT         the instruction (task instruct)
  --model DIR                model package folder (default: MODEL_PATH, else the bundled model)
  --max-new-tokens N         default 128
  --min-new-tokens N         no end-of-sequence before N tokens (default 0)
  --temperature T            0 (default) decodes greedily
  --top-p P, --top-k K       sampling filters (defaults 1 and 0: off)
  --seed S                   sampler seed (default 0)
  --stop TEXT                stop before TEXT (repeatable)
  --expand K                 the K chunks that best match the question are read as raw text (default 4, 0: off)
  --json                     print {answer, finishReason, usage, timings, evidence} as JSON
  -h, --help

Options for submit (and -q, --task, --instruction, the generation options as for ask):
  --url URL                  the API (default http://127.0.0.1:8080)
  --api-key KEY              sent as "Authorization: Bearer KEY"
  --json                     print the finished job as JSON instead of the answer

Options for delete: --url URL, --api-key KEY as for submit; --json prints each answer ({object, id, deleted, jobs})

Options for batch (and --url, --api-key as for submit; the generation options as for ask, every item's defaults):
  --questions FILE.jsonl     one line per item: {"custom_id": "...", "task": {...}, "generation": {...}} as
                             POST /v1/batches takes it, or {"question": "...", "custom_id": "..."} (custom_id
                             defaults to q<line number>); at most BATCH_MAX_ITEMS lines (server setting)
  --out FILE                 write the result lines there instead of stdout (in the questions' order)
  exit code 0 when every item succeeded, 1 otherwise (each failed item named on stderr)
`;

/** Runs the CLI; returns the exit code. Errors print one line with their stable code, never a stack trace. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  const json = argv.includes('--json');
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      io.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === 'ask') return await askCommand(rest, io);
    if (command === 'submit') return await submitCommand(rest, io);
    if (command === 'batch') return await batchCommand(rest, io);
    if (command === 'delete') return await deleteCommand(rest, io);
    if (command === 'eval') return await evalCommand(rest, io);
    if (command === 'serve' || command === 'api' || command === 'encoder-worker' || command === 'decoder-worker') {
      if (rest.length > 0) throw new AppError('INPUT_INVALID', `${command} takes no arguments: configure it with environment variables`);
      return await serveCommand(command, io);
    }
    throw new AppError('INPUT_INVALID', `unknown command "${command}" (try: e2llm ask FILE --question "...")`);
  } catch (err) {
    const e = toAppError(err);
    if (json) io.stdout.write(`${JSON.stringify({ error: { code: e.code, message: e.message } })}\n`);
    io.stderr.write(`e2llm: error ${e.code}: ${e.message}\n`);
    return ERROR_CODES[e.code].exitCode;
  }
}
