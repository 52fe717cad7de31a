import { describe, expect, it } from 'vitest';
import { ApiError, E2llmClient, parseSse } from './client.js';

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
  it('splits events across chunk boundaries, CRLF and multi-line data, skipping comments', async () => {
    const events = await collect(parseSse(stream('event: sta', 'tus\ndata: {"a":1}\n\n: keep-alive\n\n', 'event: text\r\ndata: line1\r\ndata: line2\r\n\r\n', 'data: plain\n\n')));
    expect(events).toEqual([
      { event: 'status', data: '{"a":1}' },
      { event: 'text', data: 'line1\nline2' },
      { event: 'message', data: 'plain' },
    ]);
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
    const e1 = await new E2llmClient({ baseUrl: 'http://api.test', fetch: api.fn }).getJob('job_1').catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(ApiError);
    expect(e1).toMatchObject({ code: 'OVERLOADED', message: 'busy', httpStatus: 429, retryable: true, details: { retryAfter: 3 } });
    const proxy = fakeFetch(502, '<html>Bad Gateway</html>', { 'content-type': 'text/html' });
    const e2 = await new E2llmClient({ baseUrl: 'http://api.test', fetch: proxy.fn }).getJob('job_1').catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: 'INTERNAL', httpStatus: 502, message: 'HTTP 502: <html>Bad Gateway</html>' });
  });
});
