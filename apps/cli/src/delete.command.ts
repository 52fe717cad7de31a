import { E2llmClient, type Deleted } from '@lib/client';
import { AppError } from '@lib/shared';
import { parseCommand, printUsage } from './args.js';
import type { CliIo } from './main.js';
import { DEFAULT_API_URL } from './submit.command.js';

const OPTIONS = {
  url: { type: 'string' },
  'api-key': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * `e2llm delete ID... --url URL`: deletes jobs (job_...) and documents (doc_..., with the jobs asked on them) from a
 * running API, one line each. A job that has not ended is cancelled first. Stops at the first failure (an unknown id
 * is NOT_FOUND), having deleted the ids before it.
 */
export async function deleteCommand(argv: string[], io: CliIo): Promise<number> {
  const { values: v, positionals } = parseCommand(argv, OPTIONS);
  if (v.help) return printUsage(io);
  if (positionals.length === 0) throw new AppError('INPUT_INVALID', 'delete takes one or more job or document ids');
  for (const id of positionals) {
    if (!/^(job|doc)_/.test(id)) throw new AppError('INPUT_INVALID', `"${id.slice(0, 64)}" is neither a job id (job_...) nor a document id (doc_...)`);
  }
  const client = new E2llmClient({ baseUrl: v.url ?? DEFAULT_API_URL, apiKey: v['api-key'] });
  for (const id of positionals) {
    const out: Deleted = id.startsWith('job_') ? await client.deleteJob(id) : await client.deleteDocument(id);
    io.stdout.write(v.json ? `${JSON.stringify(out)}\n` : `deleted ${out.object} ${out.id}${out.jobs.length > 0 ? ` and its jobs ${out.jobs.join(' ')}` : ''}\n`);
  }
  return 0;
}
