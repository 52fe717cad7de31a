import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2llmClient, parseSse, type JobStreamEvent, type PublicJob } from '@lib/client';
import { main } from '../../apps/cli/src/main.js';
import { startDropProxy, type DropProxy } from './drop-proxy.js';
import { startStack, type Stack } from './stack.js';

/*
 * GET /v1/jobs/:id/events resumes: every event has an id, and a client that reconnects with Last-Event-ID gets the
 * events after it, each exactly once. The disconnects are real: a proxy destroys the socket mid-stream.
 */

const DOCUMENT = 'The harbour master of Vell logged every ship that entered the bay, and the tide tables beside them. '.repeat(20);
// 24 tokens and no early end: enough text events that a cut lands in the middle of them.
const GENERATION = { maxNewTokens: 24, minNewTokens: 24 };

let stack: Stack;
let direct: E2llmClient;
let dir: string;

beforeAll(async () => {
  stack = await startStack();
  direct = new E2llmClient({ baseUrl: stack.api.url });
  dir = await mkdtemp(join(tmpdir(), 'e2llm-events-'));
}, 120_000);

afterAll(async () => {
  await stack?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function collect(it: AsyncIterable<JobStreamEvent>): Promise<JobStreamEvent[]> {
  const out: JobStreamEvent[] = [];
  for await (const e of it) out.push(e);
  return out;
}

const texts = (events: JobStreamEvent[]) => events.flatMap((e) => (e.type === 'text' ? [e.delta] : []));

/** Redis stream ids (`<ms>-<seq>`) compared numerically. */
function before(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am < bm || (am === bm && as < bs);
}

describe('SSE resume with Last-Event-ID', () => {
  let proxy: DropProxy;
  afterAll(async () => proxy?.close());

  it('after two forced disconnects the client has every event exactly once, in order', async () => {
    // Cut the first two streams after the retry preamble and three events each.
    proxy = await startDropProxy(stack.api.url, { cuts: 2, afterBlocks: 4 });
    const viaProxy = new E2llmClient({ baseUrl: proxy.url });
    const job = await viaProxy.createJob({ text: `${DOCUMENT} Resume one.`, task: { type: 'summarize' }, generation: GENERATION });
    const reconnects: (string | undefined)[] = [];
    const events = await collect(viaProxy.events(job.id, { onReconnect: ({ lastEventId }) => reconnects.push(lastEventId) }));

    // The connections: two cut, the third ran to the end; each reconnect named the last id the one before passed on.
    expect(proxy.streams.map((s) => s.cut)).toEqual([true, true, false]);
    expect(proxy.streams[0]!.lastEventId).toBeUndefined();
    expect(proxy.streams[1]!.lastEventId).toBe(proxy.streams[0]!.ids.at(-1));
    expect(proxy.streams[2]!.lastEventId).toBe(proxy.streams[1]!.ids.at(-1));
    expect(reconnects).toEqual([proxy.streams[0]!.ids.at(-1), proxy.streams[1]!.ids.at(-1)]);
    // Ids across the three connections only go forward: nothing sent twice.
    const ids = proxy.streams.flatMap((s) => s.ids);
    for (let i = 1; i < ids.length; i++) expect(before(ids[i - 1]!, ids[i]!), `${ids[i - 1]} then ${ids[i]}`).toBe(true);

    // Every event exactly once: after the first snapshot, the client's events are exactly the tail of the job's whole
    // event stream (read again from the start once the job has ended), no gap, no repeat.
    const last = events.at(-1)!;
    expect(last).toMatchObject({ type: 'status', status: 'succeeded', job: { id: job.id } });
    const replay = await collect(direct.events(job.id, { lastEventId: '0-0' }));
    const tail = events.slice(1);
    expect(tail.length).toBeGreaterThan(3);
    expect(tail).toEqual(replay.slice(replay.length - tail.length));
    const result = (last as { job: PublicJob }).job.result!;
    expect(texts(events).join('')).toBe(result.text);
    expect(texts(events)).toEqual(texts(replay));
    expect(texts(events).length).toBe(result.usage.generatedTokens);
  });

  it('replays from 0-0 through a cut as well; resuming after the terminal event answers 204; a bad id is 400', async () => {
    const job = await direct.createJob({ text: `${DOCUMENT} Resume two.`, task: { type: 'summarize' }, generation: GENERATION });
    const done = await direct.waitForJob(job.id, { intervalMs: 50 });
    const cutting = await startDropProxy(stack.api.url, { cuts: 1, afterBlocks: 6 });
    try {
      const viaProxy = new E2llmClient({ baseUrl: cutting.url });
      const events = await collect(viaProxy.events(job.id, { lastEventId: '0-0' }));
      expect(cutting.streams.map((s) => s.cut)).toEqual([true, false]);
      expect(events).toEqual(await collect(direct.events(job.id, { lastEventId: '0-0' })));
      expect(texts(events).join('')).toBe(done.result!.text);

      const terminalId = cutting.streams[1]!.ids.at(-1)!;
      const after = await fetch(`${stack.api.url}/v1/jobs/${job.id}/events`, { headers: { 'last-event-id': terminalId } });
      expect(after.status).toBe(204);
      // The query parameter works as the header does (for clients that cannot set headers).
      const query = await fetch(`${stack.api.url}/v1/jobs/${job.id}/events?lastEventId=${encodeURIComponent(terminalId)}`);
      expect(query.status).toBe(204);
    } finally {
      await cutting.close();
    }
    const bad = await fetch(`${stack.api.url}/v1/jobs/${job.id}/events`, { headers: { 'last-event-id': 'yesterday' } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('INPUT_INVALID');
  });

  it('gives every event an id, the snapshot the id of the last event before it', async () => {
    const job = await direct.createJob({ text: `${DOCUMENT} Ids.`, task: { type: 'summarize' }, generation: { maxNewTokens: 16 } });
    const read = async (headers: Record<string, string> = {}) => {
      const res = await fetch(`${stack.api.url}/v1/jobs/${job.id}/events`, { headers });
      expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
      const out = [];
      for await (const e of parseSse(res.body!)) out.push(e);
      return out;
    };
    const live = await read();
    expect(live.length).toBeGreaterThan(1);
    for (const e of live) expect(e.id).toMatch(/^\d+-\d+$/);
    expect(live.at(-1)!.event).toBe('status');
    expect(JSON.parse(live.at(-1)!.data)).toMatchObject({ object: 'job', status: 'succeeded' });
    // The whole stream, read again from the start: the live events after the snapshot are its tail, and the snapshot
    // carries the id of the event just before that tail (0-0 when none), so resuming from it repeats and skips nothing.
    const all = await read({ 'last-event-id': '0-0' });
    const tail = live.slice(1).map((e) => e.id);
    expect(all.slice(all.length - tail.length).map((e) => e.id)).toEqual(tail);
    expect(live[0]!.id).toBe(all.length > tail.length ? all[all.length - tail.length - 1]!.id : '0-0');
  });
});

describe('e2llm submit over a dropping connection', () => {
  it('resumes the event stream and prints the whole answer once', async () => {
    const proxy = await startDropProxy(stack.api.url, { cuts: 1, afterBlocks: 3 });
    try {
      const file = join(dir, 'harbour.txt');
      await writeFile(file, `${DOCUMENT} Submitted.`);
      let stdout = '';
      let stderr = '';
      const code = await main(['submit', file, '--task', 'summarize', '--url', proxy.url, '--max-new-tokens', '24', '--min-new-tokens', '24'], {
        stdout: { write: (s: string) => (stdout += s) },
        stderr: { write: (s: string) => (stderr += s) },
        env: {},
      });
      expect(stderr).not.toContain('error');
      expect(code).toBe(0);
      expect(proxy.streams[0]!.cut).toBe(true);
      expect(stderr).toContain(`resuming after event ${proxy.streams[0]!.ids.at(-1)}`);
      expect(stderr).not.toContain('polling instead');
      const [latest] = (await direct.listJobs({ limit: 1 })).data;
      expect(latest!.status).toBe('succeeded');
      expect(stdout).toBe(`${latest!.result!.text}\n`);
    } finally {
      await proxy.close();
    }
  });
});
