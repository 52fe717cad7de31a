import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { z } from 'zod';
import { AppError, type GenerationParams, type Task } from '@lib/shared';

/** node:util parseArgs for one command, strict, with its complaints as INPUT_INVALID. */
type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

export function parseCommand<O extends Options>(argv: string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new AppError('INPUT_INVALID', (err as Error).message);
  }
}

/** A command's --help: the CLI's usage on stdout, exit 0 (main.ts is imported late: it imports the commands). */
export async function printUsage(io: { stdout: { write(s: string): unknown } }): Promise<number> {
  const { USAGE } = await import('./main.js');
  io.stdout.write(USAGE);
  return 0;
}

/**
 * The task from --task, --question and --instruction. `text` checks a question or instruction that was given
 * (ask validates it against the local limit; submit leaves that to the server).
 */
export function taskFromFlags(
  type: string,
  question: string | undefined,
  instruction: string | undefined,
  text: (value: string, what: 'question' | 'instruction') => string,
): Task {
  if (type !== 'qa' && question !== undefined) throw new AppError('INPUT_INVALID', `--question is for --task qa, not ${type}`);
  if (type !== 'instruct' && instruction !== undefined) throw new AppError('INPUT_INVALID', `--instruction is for --task instruct, not ${type}`);
  switch (type) {
    case 'qa':
      if (question === undefined) throw new AppError('INPUT_INVALID', '--question is required for --task qa');
      return { type, question: text(question, 'question') };
    case 'instruct':
      if (instruction === undefined) throw new AppError('INPUT_INVALID', '--instruction is required for --task instruct');
      return { type, instruction: text(instruction, 'instruction') };
    case 'summarize':
    case 'reconstruct':
      return { type };
    default:
      throw new AppError('INPUT_INVALID', `unknown --task "${type}" (qa, summarize, reconstruct or instruct)`);
  }
}

/** The generation flags every command that generates takes (read by generationFlags). */
export const GENERATION_OPTIONS = {
  'max-new-tokens': { type: 'string' },
  'min-new-tokens': { type: 'string' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  seed: { type: 'string' },
  stop: { type: 'string', multiple: true },
  expand: { type: 'string' },
} as const;

/** The flags of the commands that talk to a running API. */
export const SERVER_OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  'poll-ms': { type: 'string' },
} as const;

/** The generation flags that were given, as numbers (undefined where absent); ranges are the schema's to check. */
export function generationFlags(v: Record<string, unknown>): z.input<typeof GenerationParams> {
  const num = (flag: string): number | undefined => {
    const raw = v[flag];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n)) throw new AppError('INPUT_INVALID', `--${flag} must be a number, got "${String(raw)}"`);
    return n;
  };
  return {
    maxNewTokens: num('max-new-tokens'),
    minNewTokens: num('min-new-tokens'),
    temperature: num('temperature'),
    topP: num('top-p'),
    topK: num('top-k'),
    seed: num('seed'),
    stop: v.stop as string[] | undefined,
    expand: v.expand === undefined ? undefined : { chunks: num('expand')! },
  };
}
