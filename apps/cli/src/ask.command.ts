import { readFile, stat } from 'node:fs/promises';
import { E2llmModel } from '@lib/model-runtime';
import { AppError, GenerationParams, decodeDocument, loadConfig, validateQuestion, type Timings } from '@lib/shared';
import { GENERATION_OPTIONS, generationFlags, parseCommand, printUsage, taskFromFlags } from './args.js';
import type { CliIo } from './main.js';

const OPTIONS = {
  question: { type: 'string', short: 'q' },
  task: { type: 'string' },
  instruction: { type: 'string' },
  model: { type: 'string' },
  ...GENERATION_OPTIONS,
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export async function askCommand(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseCommand(argv, OPTIONS);
  if (v.help) return printUsage(io);
  if (positionals.length !== 1) throw new AppError('INPUT_INVALID', 'ask takes exactly one FILE');
  const config = loadConfig(io.env, { modelPath: v.model });

  const task = taskFromFlags(v.task ?? 'qa', v.question, v.instruction, (text, what) => validateQuestion(text, config.maxQuestionChars, what));
  const params = generationParams(v, config.maxNewTokensLimit);
  const text = await readDocument(positionals[0]!, config.maxDocumentChars);

  const model = await E2llmModel.load(config);
  try {
    const stream = !v.json;
    const result = await model.ask(text, task, params, stream ? { onText: (d) => io.stdout.write(d) } : {});
    if (v.json) {
      const { answer, finishReason, usage, evidence } = result;
      io.stdout.write(`${JSON.stringify({ answer, finishReason, usage, timings: roundTimings(result.timings), evidence })}\n`);
    } else {
      io.stdout.write('\n');
      const u = result.usage;
      const expanded = u.expandedChunks > 0 ? ` + ${u.expandedChunks} expanded (${u.expandedTokens} tokens)` : '';
      io.stderr.write(
        `[${u.chunks} chunks -> ${u.softTokens} soft tokens${expanded}, ${u.generatedTokens} tokens generated (${result.finishReason}) in ${Math.round(result.timings.totalMs)} ms]\n`,
      );
      const top = result.evidence[0];
      if (top) io.stderr.write(`[evidence: chunk ${top.chunkIndex}, characters ${top.charStart}-${top.charEnd}${top.page ? `, page ${top.page}` : ''}]\n`);
    }
  } finally {
    await model.release();
  }
  return 0;
}

function generationParams(v: Record<string, unknown>, maxNewTokensLimit: number): GenerationParams {
  const parsed = GenerationParams.safeParse(generationFlags(v));
  if (!parsed.success) {
    const flag = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw new AppError('INPUT_INVALID', parsed.error.issues.map((i) => `${flag(String(i.path[0]))}: ${i.message}`).join('; '));
  }
  if (parsed.data.maxNewTokens > maxNewTokensLimit) {
    throw new AppError('INPUT_INVALID', `--max-new-tokens must be at most ${maxNewTokensLimit}`);
  }
  return parsed.data;
}

async function readDocument(path: string, maxChars: number): Promise<string> {
  const s = await stat(path).catch(() => null);
  if (!s) throw new AppError('FILE_NOT_FOUND', `no such file: ${path}`);
  if (!s.isFile()) throw new AppError('FILE_NOT_FOUND', `not a regular file: ${path}`);
  // A UTF-8 character takes at most 4 bytes: a file larger than this cannot be within the character limit.
  if (s.size > maxChars * 4) throw new AppError('INPUT_TOO_LARGE', `the file has ${s.size} bytes; the limit is ${maxChars} characters`);
  return decodeDocument(await readFile(path), maxChars);
}

function roundTimings(t: Timings): Timings {
  return Object.fromEntries(Object.entries(t).map(([k, ms]) => [k, Math.round(ms * 100) / 100])) as unknown as Timings;
}
