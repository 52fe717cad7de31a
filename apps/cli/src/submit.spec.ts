import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, E2llmClient, type JobStreamEvent } from '@lib/client';
import { startStack, type Stack } from '../../../test/e2e/stack.js';
import { CLI_DOCUMENT, runCli } from '../../../test/cli-harness.js';
import { ProgressBar, render } from './submit.command.js';

const DOCUMENT = CLI_DOCUMENT;

let stack: Stack;
let client: E2llmClient;
let dir: string;

const cli = (argv: string[]) => runCli(argv);

beforeAll(async () => {
  stack = await startStack();
  client = new E2llmClient({ baseUrl: stack.api.url });
  dir = await mkdtemp(join(tmpdir(), 'e2llm-submit-'));
  await writeFile(join(dir, 'doc.txt'), DOCUMENT);
  await writeFile(join(dir, 'empty.txt'), '   \n');
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('e2llm submit', () => {
  it('uploads the file, shows progress on stderr and prints the answer', async () => {
    const r = await cli(['submit', join(dir, 'doc.txt'), '-q', 'Who kept the lighthouse?', '--url', stack.api.url, '--max-new-tokens', '8', '--poll-ms', '50']);
    expect(r.stderr).not.toContain('error');
    expect(r.code).toBe(0);
    const [latest] = (await client.listJobs({ limit: 1 })).data;
    expect(latest).toMatchObject({ status: 'succeeded', task: { type: 'qa', question: 'Who kept the lighthouse?' }, generation: { maxNewTokens: 8 } });
    expect(r.stdout).toBe(`${latest!.result!.text}\n`);
    // The bar ends on the finished job: every chunk done, then the status.
    const lines = r.stderr.trim().split('\n');
    const total = latest!.progress.chunksTotal;
    expect(lines.at(-1)).toMatch(new RegExp(`^\\[#{30}\\] ${total}/${total} chunks \\(\\d+ encoded, \\d+ cached\\) succeeded$`));
  });

  it('prints the finished job as JSON with --json', async () => {
    const r = await cli(['submit', join(dir, 'doc.txt'), '--task', 'summarize', '--url', stack.api.url, '--max-new-tokens', '4', '--poll-ms', '50', '--json']);
    expect(r.code).toBe(0);
    const job = JSON.parse(r.stdout);
    expect(job).toMatchObject({ object: 'job', status: 'succeeded', task: { type: 'summarize' }, result: { text: expect.any(String), usage: { generatedTokens: expect.any(Number) } } });
    // The second submission of the same text finds its chunks already encoded.
    expect(job.progress.chunksCached).toBe(job.progress.chunksTotal);
  });

  it('reports the API error code and its exit code', async () => {
    const r = await cli(['submit', join(dir, 'empty.txt'), '-q', 'Anything?', '--url', stack.api.url, '--json']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^e2llm: error INPUT_EMPTY: /);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'INPUT_EMPTY', message: expect.any(String) } });
  });

  it('refuses bad flags before sending anything, and says when the API cannot be reached', async () => {
    expect((await cli(['submit', join(dir, 'doc.txt'), '--url', stack.api.url])).stderr).toContain('--question is required');
    expect((await cli(['submit', join(dir, 'missing.txt'), '-q', 'x'])).stderr).toMatch(/error FILE_NOT_FOUND/);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const down = await cli(['submit', join(dir, 'doc.txt'), '-q', 'x', '--url', `http://127.0.0.1:${port}`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(`e2llm: error INTERNAL: cannot reach the API at http://127.0.0.1:${port}: ECONNREFUSED\n`);
  });

  it('renders the bar from the progress counts', () => {
    const job = { status: 'encoding', progress: { chunksTotal: 10, chunksEncoded: 3, chunksCached: 2 } } as Parameters<typeof render>[0];
    expect(render(job, 10)).toBe('[#####.....] 5/10 chunks (3 encoded, 2 cached) encoding');
  });

  const jobAt = (status: string, chunksEncoded: number, chunksCached = 0) =>
    ({ status, progress: { chunksTotal: 4, chunksEncoded, chunksCached } }) as Parameters<typeof render>[0];

  it('off a terminal writes one line per change and nothing more', () => {
    let out = '';
    const bar = new ProgressBar({ write: (s: string) => (out += s) });
    for (const job of [jobAt('queued', 0), jobAt('encoding', 2), jobAt('encoding', 2), jobAt('succeeded', 4)]) bar.update(job);
    bar.note('e2llm: a note');
    bar.stop();
    expect(out).toBe(`${render(jobAt('queued', 0))}\n${render(jobAt('encoding', 2))}\n${render(jobAt('succeeded', 4))}\ne2llm: a note\n`);
  });

  it('on a terminal redraws the line in place, keeps notes above it and ends it with a newline', async () => {
    let out = '';
    const tty = { isTTY: true, columns: 120, write: (s: string) => ((out += s), true) };
    const bar = new ProgressBar(tty);
    const drawn = () => new Promise((r) => setTimeout(r, 250)); // cli-progress redraws on a 100 ms timer
    bar.update(jobAt('queued', 0));
    await drawn();
    expect(out).toContain(render(jobAt('queued', 0)));
    expect(out).not.toContain('\n');
    bar.update(jobAt('encoding', 1, 1));
    bar.note('e2llm: a note');
    await drawn();
    expect(out).toMatch(/e2llm: a note\n\x1b\[1G\[#{15}\.{15}\] 2\/4 chunks/);
    bar.note('e2llm: a last note');
    bar.update(jobAt('succeeded', 3, 1));
    bar.stop();
    expect(out).toContain('e2llm: a last note\n');
    const moves = /\x1b\[1G/g; // cursor to column 1, written before each redraw
    expect(out.replace(moves, '').endsWith(`${render(jobAt('succeeded', 3, 1))}\x1b[0K\n`)).toBe(true);
    expect(out.split('\n')).toHaveLength(4); // two notes, the finished bar, and nothing after the last newline
  });
});

describe('@lib/client against the API', () => {
  it('streams a job as events: progress, text and a terminal status holding the result', async () => {
    const job = await client.createJob({ text: `${DOCUMENT} Events.`, task: { type: 'qa', question: 'Who?' }, generation: { maxNewTokens: 6 } });
    const events: JobStreamEvent[] = [];
    for await (const e of client.events(job.id)) events.push(e);
    const last = events.at(-1);
    expect(last).toMatchObject({ type: 'status', status: 'succeeded', job: { id: job.id, result: { text: expect.any(String) } } });
    expect(events.some((e) => e.type === 'progress')).toBe(true);
    const streamed = events.flatMap((e) => (e.type === 'text' ? [e.delta] : [])).join('');
    if (last?.type === 'status') expect(streamed).toBe(last.job!.result!.text);
  });

  it('uploads file bytes, stores documents, asks them, lists, cancels and replays idempotent requests', async () => {
    const bytes = new TextEncoder().encode(DOCUMENT);
    const key = `k-${Date.now()}`;
    const a = await client.createJob({ file: bytes, filename: 'doc.md', task: { type: 'reconstruct' }, generation: { maxNewTokens: 4 }, metadata: { source: 'spec' }, idempotencyKey: key });
    const b = await client.createJob({ file: bytes, filename: 'doc.md', task: { type: 'reconstruct' }, generation: { maxNewTokens: 4 }, metadata: { source: 'spec' }, idempotencyKey: key });
    expect(b.id).toBe(a.id);
    const seen: string[] = [];
    const done = await client.waitForJob(a.id, { intervalMs: 50, onProgress: (j) => seen.push(j.status) });
    expect(done).toMatchObject({ status: 'succeeded', metadata: { source: 'spec' } });
    expect(seen.at(-1)).toBe('succeeded');

    const doc = await client.createDocument({ text: `${DOCUMENT} Stored.`, metadata: { kind: 'doc' } });
    expect(doc).toMatchObject({ object: 'document', id: expect.stringMatching(/^doc_/) });
    const asked = await client.askDocument(doc.id, { task: { type: 'qa', question: 'Who?' }, generation: { maxNewTokens: 4 } });
    expect(asked.documentId).toBe(doc.id);
    expect((await client.waitForJob(asked.id, { intervalMs: 50 })).status).toBe('succeeded');
    expect((await client.getDocument(doc.id)).id).toBe(doc.id);

    const page = await client.listJobs({ limit: 2 });
    expect(page).toMatchObject({ object: 'list', hasMore: true, nextCursor: expect.any(String) });
    expect(page.data[0]!.id).toBe(asked.id);
    const next = await client.listJobs({ limit: 2, after: page.nextCursor! });
    expect(next.data.every((j) => !page.data.some((p) => p.id === j.id))).toBe(true);

    const ended = await client.cancelJob(asked.id).catch((e: unknown) => e);
    expect(ended).toBeInstanceOf(ApiError);
    expect(ended).toMatchObject({ code: 'CONFLICT', httpStatus: 409 });
    const running = await client.createJob({ text: `${DOCUMENT.repeat(4)} Cancel me.`, task: { type: 'summarize' }, generation: { maxNewTokens: 256 } });
    await client.cancelJob(running.id);
    expect((await client.waitForJob(running.id, { intervalMs: 50 })).status).toBe('cancelled');
  });

  it('turns error bodies into ApiError with the API code', async () => {
    const err = await client.getJob('job_nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ code: 'NOT_FOUND', httpStatus: 404, retryable: false });
    const conflict = await client.createJob({ text: 'x y z', task: { type: 'summarize' }, idempotencyKey: 'same' }).then(() =>
      client.createJob({ text: 'other', task: { type: 'summarize' }, idempotencyKey: 'same' }).catch((e: unknown) => e),
    );
    expect(conflict).toMatchObject({ code: 'CONFLICT', httpStatus: 409 });
  });
});
