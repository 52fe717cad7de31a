import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2llmClient } from '@lib/client';
import { startStack, type Stack } from '../../../test/e2e/stack.js';
import { parseQuestions } from './batch.command.js';
import { CLI_DOCUMENT, runCli } from '../../../test/cli-harness.js';

const DOCUMENT = CLI_DOCUMENT;

let stack: Stack;
let client: E2llmClient;
let dir: string;

const cli = (argv: string[]) => runCli(argv);

const QUESTIONS = [
  JSON.stringify({ custom_id: 'a', task: { type: 'qa', question: 'Who kept the lighthouse?' }, generation: { maxNewTokens: 2 } }),
  JSON.stringify({ question: 'What did she light?' }),
  '',
  JSON.stringify({ question: 'For how long?', custom_id: 'last' }),
].join('\n');

beforeAll(async () => {
  stack = await startStack();
  client = new E2llmClient({ baseUrl: stack.api.url });
  dir = await mkdtemp(join(tmpdir(), 'e2llm-batch-'));
  await writeFile(join(dir, 'doc.txt'), DOCUMENT);
  await writeFile(join(dir, 'questions.jsonl'), QUESTIONS);
  await writeFile(join(dir, 'dup.jsonl'), [JSON.stringify({ question: 'Who?', custom_id: 'a' }), JSON.stringify({ question: 'When?', custom_id: 'a' })].join('\n'));
  await writeFile(join(dir, 'bad.jsonl'), `${JSON.stringify({ question: 'Who?' })}\nWho kept it?\n`);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('e2llm batch', () => {
  it('asks every line in one batch and prints the result lines in the file order', async () => {
    const r = await cli(['batch', join(dir, 'doc.txt'), '--questions', join(dir, 'questions.jsonl'), '--url', stack.api.url, '--max-new-tokens', '4', '--poll-ms', '50']);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.custom_id, l.index, l.status])).toEqual([
      ['a', 0, 'succeeded'],
      ['q2', 1, 'succeeded'],
      ['last', 2, 'succeeded'],
    ]);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^batch bat_\w+: 3\/3 items ended \(3 succeeded, 0 failed, 0 cancelled, 0 expired\) completed$/);
    // Each line is its job's result; the flags are defaults an item's own generation overrides.
    const jobs = await Promise.all(lines.map((l) => client.getJob(l.jobId)));
    expect(jobs.map((j) => j.generation.maxNewTokens)).toEqual([2, 4, 4]);
    expect(jobs[1]!.task).toEqual({ type: 'qa', question: 'What did she light?' });
    expect(lines.map((l) => l.result)).toEqual(jobs.map((j) => j.result));
  });

  it('writes the lines to --out', async () => {
    const out = join(dir, 'results.jsonl');
    const r = await cli(['batch', join(dir, 'doc.txt'), '--questions', join(dir, 'questions.jsonl'), '--url', stack.api.url, '--max-new-tokens', '2', '--poll-ms', '50', '--out', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('');
    expect((await readFile(out, 'utf8')).trim().split('\n')).toHaveLength(3);
  });

  it('refuses a duplicate custom_id with the server\'s INPUT_INVALID naming the item, exit 2', async () => {
    const r = await cli(['batch', join(dir, 'doc.txt'), '--questions', join(dir, 'dup.jsonl'), '--url', stack.api.url]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/error INPUT_INVALID: items\[1\] \(custom_id "a"\): repeats the custom_id of items\[0\]/);
  });

  it('names a line that is not JSON, and needs --questions', async () => {
    const bad = await cli(['batch', join(dir, 'doc.txt'), '--questions', join(dir, 'bad.jsonl'), '--url', stack.api.url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/error INPUT_INVALID: .*bad\.jsonl line 2 is not JSON/);
    const none = await cli(['batch', join(dir, 'doc.txt'), '--url', stack.api.url]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/--questions/);
  });

  it('parseQuestions: shorthand, items as given, flags as defaults', () => {
    expect(parseQuestions('{"question":"Q?"}\n\n{"custom_id":"x","task":{"type":"summarize"},"generation":{"seed":3}}', 'q.jsonl', { maxNewTokens: 5, seed: 1 })).toEqual([
      { custom_id: 'q1', task: { type: 'qa', question: 'Q?' }, generation: { maxNewTokens: 5, seed: 1 } },
      { custom_id: 'x', task: { type: 'summarize' }, generation: { maxNewTokens: 5, seed: 3 } },
    ]);
  });
});
