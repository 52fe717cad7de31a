import { describe, expect, it } from 'vitest';
import { ApiError, E2llmClient, parseRetryAfter, parseSse } from './client.js';

function stream(...parts: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(enc.encode(p));
      c.close();
    },
  });
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** A fetch that answers every request with one canned response, and records what was sent. */
function fakeFetch(status: number, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fn = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    return new Response(body, { status, headers });
  }) as unknown as typeof fetch;
  return { fn, calls };
}

describe('parseSse', () => {
  it('splits events across chunk boundaries, CRLF and multi-line data, skipping comments, with their ids', async () => {
    const events = await collect(parseSse(stream('retry: 2000\n\nid: 1-0\nevent: sta', 'tus\ndata: {"a":1}\n\n: keep-alive\n\n', 'event: text\r\ndata: line1\r\ndata: line2\r\n\r\n', 'data: plain\n\n')));
    expect(events).toEqual([
      { event: 'status', data: '{"a":1}', id: '1-0' },
      { event: 'text', data: 'line1\nline2' },
      { event: 'message', data: 'plain' },
    ]);
  });
});

/** A fetch that answers each request with the next canned response, and records what was sent. */
function scriptedFetch(...answers: (() => Response)[]) {
  const calls: { url: string; init: RequestInit }[] = [];
  const fn = (async (url: string, init: RequestInit) => {
    calls.push({ url, init });
    const next = answers.shift();
    if (!next) throw new Error('no more answers');
    return next();
  }) as unknown as typeof fetch;
  return { fn, calls };
}
const json = (status: number, body: unknown, headers: Record<string, string> = {}) => () => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
const busy = (retryAfter?: string) => json(429, { error: { code: 'RATE_LIMITED', message: 'slow down' } }, retryAfter === undefined ? {} : { 'retry-after': retryAfter });

describe('E2llmClient data lifecycle', () => {
  it('lists documents with the page query, and deletes jobs and documents by id (DELETE, the id encoded)', async () => {
    const { fn, calls } = scriptedFetch(
      json(200, { object: 'list', data: [], nextCursor: null, hasMore: false }),
      json(200, { object: 'job', id: 'job_1', deleted: true, jobs: [] }),
      json(200, { object: 'document', id: 'doc_1', deleted: true, jobs: ['job_2'] }),
      json(404, { error: { code: 'NOT_FOUND', message: 'no document' } }),
    );
    const client = new E2llmClient({ baseUrl: 'http://api.test', apiKey: 'k', fetch: fn });
    expect((await client.listDocuments({ limit: 2, after: 'abc' })).data).toEqual([]);
    expect(await client.deleteJob('job_1')).toEqual({ object: 'job', id: 'job_1', deleted: true, jobs: [] });
    expect((await client.deleteDocument('doc_1')).jobs).toEqual(['job_2']);
    const err = await client.deleteDocument('a/b').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('NOT_FOUND');
    expect(calls.map((c) => [c.init.method, c.url])).toEqual([
      ['GET', 'http://api.test/v1/documents?limit=2&after=abc'],
      ['DELETE', 'http://api.test/v1/jobs/job_1'],
      ['DELETE', 'http://api.test/v1/documents/doc_1'],
      ['DELETE', 'http://api.test/v1/documents/a%2Fb'],
    ]);
  });
});

describe('E2llmClient retries', () => {
  it('sends a 429 or 503 again after its Retry-After, and says so before waiting', async () => {
    const { fn, calls } = scriptedFetch(busy('0'), json(503, { error: { code: 'QUEUE_UNAVAILABLE', message: 'redis down' } }, { 'retry-after': '0' }), json(200, { object: 'job', id: 'job_1' }));
    const seen: { code: string; attempt: number; delayMs: number }[] = [];
    const client = new E2llmClient({ baseUrl: 'http://api.test', fetch: fn, retry: { onRetry: ({ error, attempt, delayMs }) => seen.push({ code: error.code, attempt, delayMs }) } });
    expect(await client.getJob('job_1')).toEqual({ object: 'job', id: 'job_1' });
    expect(calls).toHaveLength(3);
    expect(seen).toEqual([
      { code: 'RATE_LIMITED', attempt: 1, delayMs: 0 },
      { code: 'QUEUE_UNAVAILABLE', attempt: 2, delayMs: 0 },
    ]);
  });

  it('waits what Retry-After asks', async () => {
    const { fn } = scriptedFetch(busy('1'), json(200, { id: 'x' }));
    const t0 = performance.now();
    await new E2llmClient({ baseUrl: 'http://api.test', fetch: fn }).getJob('x');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(990);
  });

  it('gives up after the configured retries, on a wait longer than allowed, and never retries other errors', async () => {
    const spent = scriptedFetch(busy('0'), busy('0'), busy('0'));
    const e1 = await new E2llmClient({ baseUrl: 'http://api.test', fetch: spent.fn, retry: { retries: 2 } }).getJob('x').catch((e: unknown) => e);
    expect(e1).toMatchObject({ code: 'RATE_LIMITED', httpStatus: 429, retryAfterMs: 0 });
    expect(spent.calls).toHaveLength(3);

    const long = scriptedFetch(busy('120'));
    const e2 = await new E2llmClient({ baseUrl: 'http://api.test', fetch: long.fn, retry: { maxDelayMs: 5000 } }).getJob('x').catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: 'RATE_LIMITED', retryAfterMs: 120_000 });
    expect(long.calls).toHaveLength(1);

    const off = scriptedFetch(busy('0'));
    expect(await new E2llmClient({ baseUrl: 'http://api.test', fetch: off.fn, retry: false }).getJob('x').catch((e: unknown) => e)).toMatchObject({ httpStatus: 429 });
    expect(off.calls).toHaveLength(1);

    for (const [status, code] of [[500, 'INTERNAL'], [404, 'NOT_FOUND'], [409, 'CONFLICT']] as const) {
      const once = scriptedFetch(json(status, { error: { code, message: 'no' } }, { 'retry-after': '0' }));
      expect(await new E2llmClient({ baseUrl: 'http://api.test', fetch: once.fn }).getJob('x').catch((e: unknown) => e)).toMatchObject({ code, httpStatus: status });
      expect(once.calls).toHaveLength(1);
    }
    expect(() => new E2llmClient({ baseUrl: 'http://api.test', retry: { retries: -1 } })).toThrow(/retries/);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-12-04T12:00:00Z');
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter('Fri, 04 Dec 2026 12:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Fri, 04 Dec 2026 11:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});

describe('E2llmClient.events', () => {
  const sse = (...parts: string[]) => () => new Response(stream(...parts), { status: 200, headers: { 'content-type': 'text/event-stream' } });
  const job = (status: string) => JSON.stringify({ object: 'job', id: 'job_1', status, result: status === 'succeeded' ? { text: 'ab' } : null });

  it('reconnects after a drop with Last-Event-ID and yields every event once', async () => {
    const { fn, calls } = scriptedFetch(
      sse('retry: 10\n\n', `id: 5-0\nevent: status\ndata: ${job('decoding')}\n\n`, 'id: 6-0\nevent: text\ndata: {"type":"text","delta":"a"}\n\n'),
      () => {
        throw new TypeError('fetch failed');
      },
      sse('retry: 10\n\n', 'id: 7-0\nevent: text\ndata: {"type":"text","delta":"b"}\n\n', `id: 8-0\nevent: status\ndata: ${job('succeeded')}\n\n`),
    );
    const drops: (string | undefined)[] = [];
    const client = new E2llmClient({ baseUrl: 'http://api.test', fetch: fn, retry: false });
    const events = await collect(client.events('job_1', { onReconnect: ({ lastEventId }) => drops.push(lastEventId) }));
    expect(events.map((e) => (e.type === 'text' ? e.delta : e.type === 'status' ? e.status : e.type))).toEqual(['decoding', 'a', 'b', 'succeeded']);
    expect(drops).toEqual(['6-0', '6-0']);
    expect((calls[0]!.init.headers as Record<string, string>)['last-event-id']).toBeUndefined();
    expect((calls[2]!.init.headers as Record<string, string>)['last-event-id']).toBe('6-0');
  });

  it('ends quietly on 204 (nothing after the last event), and gives up after maxReconnects drops without an event', async () => {
    const done = scriptedFetch(() => new Response(null, { status: 204 }));
    expect(await collect(new E2llmClient({ baseUrl: 'http://api.test', fetch: done.fn }).events('job_1', { lastEventId: '8-0' }))).toEqual([]);
    expect((done.calls[0]!.init.headers as Record<string, string>)['last-event-id']).toBe('8-0');

    const empty = scriptedFetch(sse('retry: 1\n\n'), sse('retry: 1\n\n'), sse('retry: 1\n\n'));
    const err = await collect(new E2llmClient({ baseUrl: 'http://api.test', fetch: empty.fn }).events('job_1', { maxReconnects: 2 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INTERNAL', message: expect.stringContaining('dropped 3 times in a row') });
    expect(empty.calls).toHaveLength(3);

    const gone = scriptedFetch(json(404, { error: { code: 'NOT_FOUND', message: 'no such job' } }));
    expect(await collect(new E2llmClient({ baseUrl: 'http://api.test', fetch: gone.fn }).events('job_1')).catch((e: unknown) => e)).toMatchObject({ code: 'NOT_FOUND' });
    expect(gone.calls).toHaveLength(1);
  });
});

describe('E2llmClient', () => {
  it('sends JSON with the API key and idempotency key', async () => {
    const { fn, calls } = fakeFetch(202, JSON.stringify({ object: 'job', id: 'job_1' }));
    const client = new E2llmClient({ baseUrl: 'http://api.test/', apiKey: 'k'.repeat(20), fetch: fn });
    await client.createJob({ text: 'doc', task: { type: 'summarize' }, generation: { maxNewTokens: 4 }, idempotencyKey: 'idem' });
    expect(calls[0]!.url).toBe('http://api.test/v1/jobs');
    const headers = calls[0]!.init.headers as Record<string, string>;
    expect(headers).toMatchObject({ authorization: `Bearer ${'k'.repeat(20)}`, 'idempotency-key': 'idem', 'content-type': 'application/json' });
    expect(JSON.parse(calls[0]!.init.body as string)).toEqual({ text: 'doc', task: { type: 'summarize' }, generation: { maxNewTokens: 4 } });
  });

  it('sends a file as multipart with JSON-valued fields', async () => {
    const { fn, calls } = fakeFetch(202, JSON.stringify({ object: 'job', id: 'job_1' }));
    await new E2llmClient({ baseUrl: 'http://api.test', fetch: fn }).createJob({ file: new Uint8Array([104, 105]), filename: 'a.txt', task: { type: 'qa', question: 'q?' } });
    const form = calls[0]!.init.body as FormData;
    expect(form.get('task')).toBe('{"type":"qa","question":"q?"}');
    expect((form.get('file') as File).name).toBe('a.txt');
    expect(await (form.get('file') as File).text()).toBe('hi');
  });

  it('maps error bodies to ApiError with the API code, and foreign answers by status', async () => {
    const api = fakeFetch(429, JSON.stringify({ error: { code: 'OVERLOADED', message: 'busy', details: { retryAfter: 3 } } }));
    const e1 = await new E2llmClient({ baseUrl: 'http://api.test', fetch: api.fn, retry: false }).getJob('job_1').catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ApiError);
    expect(e1).toMatchObject({ code: 'OVERLOADED', message: 'busy', httpStatus: 429, retryable: true, details: { retryAfter: 3 } });
    const proxy = fakeFetch(502, '<html>Bad Gateway</html>', { 'content-type': 'text/html' });
    const e2 = await new E2llmClient({ baseUrl: 'http://api.test', fetch: proxy.fn }).getJob('job_1').catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: 'INTERNAL', httpStatus: 502, message: 'HTTP 502: <html>Bad Gateway</html>' });
  });
});

describe('E2llmClient batches', () => {
  const items = [
    { custom_id: 'a', task: { type: 'qa' as const, question: 'Who?' } },
    { custom_id: 'b', task: { type: 'summarize' as const }, generation: { maxNewTokens: 4 } },
  ];
  const batch = { object: 'batch', id: 'bat_1', status: 'in_progress' };

  it('sends text and a stored document id as JSON, and a file as multipart with the items as JSONL', async () => {
    const { fn, calls } = scriptedFetch(json(202, batch), json(202, batch), json(202, batch));
    const client = new E2llmClient({ baseUrl: 'http://api', fetch: fn });
    await client.createBatch({ text: 'doc', items, metadata: { run: '1' } });
    await client.createBatch({ documentId: 'doc_1', items, idempotencyKey: 'k-1' });
    await client.createBatch({ file: new TextEncoder().encode('doc'), filename: 'd.txt', contentType: 'text/plain', items, webhook: { url: 'https://hooks.example/x' } });
    expect(calls.map((c) => [c.init.method, c.url])).toEqual([
      ['POST', 'http://api/v1/batches'],
      ['POST', 'http://api/v1/batches'],
      ['POST', 'http://api/v1/batches'],
    ]);
    expect(JSON.parse(calls[0]!.init.body as string)).toEqual({ text: 'doc', metadata: { run: '1' }, items });
    expect(JSON.parse(calls[1]!.init.body as string)).toEqual({ documentId: 'doc_1', items });
    expect((calls[1]!.init.headers as Record<string, string>)['idempotency-key']).toBe('k-1');
    const form = calls[2]!.init.body as FormData;
    expect((form.get('items') as string).split('\n').map((l) => JSON.parse(l))).toEqual(items);
    expect(JSON.parse(form.get('webhook') as string)).toEqual({ url: 'https://hooks.example/x' });
    expect(await (form.get('file') as Blob).text()).toBe('doc');
  });

  it('reads the results JSONL from an offset, and cancels', async () => {
    const line = { custom_id: 'a', index: 0, status: 'cancelled', jobId: 'job_1', result: null, error: { code: 'JOB_CANCELLED', message: 'x' } };
    const { fn, calls } = scriptedFetch(
      () => new Response(`${JSON.stringify(line)}\n${JSON.stringify({ ...line, custom_id: 'b', index: 1 })}\n`, { status: 200, headers: { 'content-type': 'application/jsonl' } }),
      json(200, { ...batch, status: 'cancelling' }),
    );
    const client = new E2llmClient({ baseUrl: 'http://api', fetch: fn });
    expect((await client.batchResults('bat_1', { offset: 3 })).map((l) => l.custom_id)).toEqual(['a', 'b']);
    expect((await client.cancelBatch('bat_1')).status).toBe('cancelling');
    expect(calls.map((c) => [c.init.method, c.url])).toEqual([
      ['GET', 'http://api/v1/batches/bat_1/results?offset=3'],
      ['POST', 'http://api/v1/batches/bat_1/cancel'],
    ]);
  });

  it('lists batches with the page query', async () => {
    const { fn, calls } = scriptedFetch(json(200, { object: 'list', data: [], nextCursor: null, hasMore: false }));
    const client = new E2llmClient({ baseUrl: 'http://api', fetch: fn });
    expect((await client.listBatches({ limit: 5, after: 'abc' })).hasMore).toBe(false);
    expect(calls[0]!.url).toBe('http://api/v1/batches?limit=5&after=abc');
  });
});
