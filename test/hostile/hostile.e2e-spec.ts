/**
 * Hostile and malformed requests against the composed stack (startStack): every one gets its documented 4xx in the
 * one error shape `{error: {code, message, details?}}`, nothing leaks into Object.prototype, and /healthz stays 200
 * after each. These are distinct from the 21 bad-input cases of test/e2e/pipeline.e2e-spec.ts.
 *
 * All traffic is on 127.0.0.1. Webhook targets outside loopback are only ever *submitted* (and must be refused at
 * submission); the stack that could deliver webhooks has its decoder worker closed, so a target wrongly accepted is
 * never contacted. The redirect case runs a second stack whose receivers are both on loopback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHandle } from '@app/api';
import { makeDocx, makePdf } from '@lib/extract/testing';
import { loadConfig, type Config } from '@lib/shared';
import { startStack, type Stack } from '../e2e/stack.js';

const ALICE = `alice-key-${randomBytes(8).toString('hex')}`;
const BOB = `bob-key-${randomBytes(8).toString('hex')}`;
const ADMIN = `admin-key-${randomBytes(8).toString('hex')}`;
const API_KEYS = `alice:${ALICE},bob:sha256:${createHash('sha256').update(BOB).digest('hex')}`;

let stack: Stack;
let base: string;
let aliceJob: string;
let aliceDoc: string;

const as = (key: string | null) => {
  const http = request(base);
  const auth = (t: request.Test) => (key ? t.set('authorization', `Bearer ${key}`) : t);
  return {
    get: (p: string) => auth(http.get(p)),
    post: (p: string) => auth(http.post(p)),
    put: (p: string) => auth(http.put(p)),
    delete: (p: string) => auth(http.delete(p)),
  };
};
const alice = () => as(ALICE);
const ok = { text: 'A short note about the harbour lantern.', task: { type: 'summarize' } };

/** Sends raw bytes (headers as given) over one connection; for bodies and headers supertest would normalise. */
function raw(method: string, path: string, headers: Record<string, string | number>, body?: Buffer | string): Promise<{ status: number; headers: IncomingHttpHeaders; body: any }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = text ? JSON.parse(text) : undefined;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode!, headers: res.headers, body: parsed });
      });
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** A JSON body sent with Transfer-Encoding: chunked (no Content-Length), `bytes` long. */
function chunkedJson(bytes: number): Promise<{ status: number; headers: IncomingHttpHeaders; body: any }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: '/v1/jobs', headers: { 'content-type': 'application/json', authorization: `Bearer ${ALICE}`, 'transfer-encoding': 'chunked' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text ? JSON.parse(text) : undefined }));
    });
    // The server may answer and close before every byte is written.
    req.on('error', (err) => (/EPIPE|ECONNRESET/.test(String(err)) ? undefined : reject(err)));
    const piece = Buffer.alloc(64 * 1024, 0x61);
    req.write('{"task":{"type":"summarize"},"text":"');
    let sent = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += piece.length;
        if (!req.write(piece)) return void req.once('drain', pump);
      }
      req.end('"}');
    };
    pump();
  });
}

const json = (body: Buffer | string, extra: Record<string, string> = {}) =>
  raw('POST', '/v1/jobs', { 'content-type': 'application/json', authorization: `Bearer ${ALICE}`, 'content-length': Buffer.byteLength(body), ...extra }, body);

const nested = (depth: number, inner = '"x"') => '['.repeat(depth) + inner + ']'.repeat(depth);
const nestedObj = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

type Res = { status: number; headers: IncomingHttpHeaders | Record<string, string>; body: any };
type Case = [name: string, send: () => Promise<Res>, status: number, code: string | null];

const webhook = (url: string) => () => alice().post('/v1/jobs').send({ ...ok, webhook: { url } });

const cases: Case[] = [
  // --- authentication and tenancy
  ['no Authorization header', () => as(null).post('/v1/jobs').send(ok), 401, 'UNAUTHORIZED'],
  ['a wrong API key', () => as('not-a-key-of-anyone-at-all').get('/v1/jobs'), 401, 'UNAUTHORIZED'],
  ['the Basic scheme instead of Bearer', () => request(base).get('/v1/jobs').set('authorization', `Basic ${Buffer.from(`alice:${ALICE}`).toString('base64')}`), 401, 'UNAUTHORIZED'],
  ['an empty Bearer token', () => request(base).get('/v1/jobs').set('authorization', 'Bearer '), 401, 'UNAUTHORIZED'],
  ['a 12 kB Bearer token', () => request(base).get('/v1/jobs').set('authorization', `Bearer ${'k'.repeat(12_000)}`), 401, 'UNAUTHORIZED'],
  ['the stored SHA-256 digest sent as the key', () => as(createHash('sha256').update(BOB).digest('hex')).get('/v1/jobs'), 401, 'UNAUTHORIZED'],
  ["another tenant's job", () => as(BOB).get(`/v1/jobs/${aliceJob}`), 404, 'NOT_FOUND'],
  ["cancelling another tenant's job", () => as(BOB).post(`/v1/jobs/${aliceJob}/cancel`), 404, 'NOT_FOUND'],
  ["another tenant's job events", () => as(BOB).get(`/v1/jobs/${aliceJob}/events`), 404, 'NOT_FOUND'],
  ["another tenant's document", () => as(BOB).get(`/v1/documents/${aliceDoc}`), 404, 'NOT_FOUND'],
  ["a job on another tenant's document", () => as(BOB).post(`/v1/documents/${aliceDoc}/jobs`).send({ task: { type: 'summarize' } }), 404, 'NOT_FOUND'],
  ['the queue dashboard with a tenant key', () => alice().get('/admin/queues'), 403, 'FORBIDDEN'],
  ['the queue dashboard without a key', () => as(null).get('/admin/queues/api/queues'), 401, 'UNAUTHORIZED'],
  // --- sizes and headers
  ['a 64 kB header (over the HTTP parser limit)', () => raw('GET', '/v1/jobs', { authorization: `Bearer ${ALICE}`, 'x-filler': 'f'.repeat(64 * 1024) }), 431, null],
  ['a chunked JSON body streamed past the size limit', () => chunkedJson(22 * 1024 * 1024), 413, 'INPUT_TOO_LARGE'],
  ['an uploaded file over the size limit', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.alloc(21 * 1024 * 1024, 0x61), 'big.txt'), 413, 'INPUT_TOO_LARGE'],
  ['an Idempotency-Key of 4 kB', () => alice().post('/v1/jobs').set('Idempotency-Key', 'i'.repeat(4096)).send(ok), 400, 'INPUT_INVALID'],
  // --- JSON structure and types
  ['10,000 levels of nested arrays', () => json(`{"text":"hi","task":{"type":"summarize"},"metadata":${nested(10_000)}}`), 400, 'INPUT_INVALID'],
  ['10,000 levels of nested objects', () => json(`{"text":"hi","task":${nestedObj(10_000)}}`), 400, 'INPUT_INVALID'],
  ['1,000,000 levels of nested arrays', () => json(`{"text":"hi","task":${nested(1_000_000)}}`), 400, 'INPUT_INVALID'],
  ['a JSON array body', () => json('[{"text":"hi","task":{"type":"summarize"}}]'), 400, 'INPUT_INVALID'],
  ['a JSON null body', () => json('null'), 400, 'INPUT_INVALID'],
  ['a JSON string body', () => json('"hello"'), 400, 'INPUT_INVALID'],
  ['text as a number', () => alice().post('/v1/jobs').send({ text: 42, task: { type: 'summarize' } }), 400, 'INPUT_INVALID'],
  ['text as an array', () => alice().post('/v1/jobs').send({ text: ['a', 'b'], task: { type: 'summarize' } }), 400, 'INPUT_INVALID'],
  ['task as a string', () => alice().post('/v1/jobs').send({ text: 'hi', task: 'qa' }), 400, 'INPUT_INVALID'],
  ['a question as an object', () => alice().post('/v1/jobs').send({ text: 'hi', task: { type: 'qa', question: { $gt: '' } } }), 400, 'INPUT_INVALID'],
  ['temperature as a string', () => alice().post('/v1/jobs').send({ ...ok, generation: { temperature: '0.5' } }), 400, 'INPUT_INVALID'],
  ['maxNewTokens of 1e309 (Infinity)', () => json('{"text":"hi","task":{"type":"summarize"},"generation":{"maxNewTokens":1e309}}'), 400, 'INPUT_INVALID'],
  ['maxNewTokens of 2^53 + 1', () => json('{"text":"hi","task":{"type":"summarize"},"generation":{"maxNewTokens":9007199254740993}}'), 400, 'INPUT_INVALID'],
  ['a negative maxNewTokens', () => alice().post('/v1/jobs').send({ ...ok, generation: { maxNewTokens: -1 } }), 400, 'INPUT_INVALID'],
  ['a fractional topK', () => alice().post('/v1/jobs').send({ ...ok, generation: { topK: 1.5 } }), 400, 'INPUT_INVALID'],
  ['a seed of 1e20', () => json('{"text":"hi","task":{"type":"summarize"},"generation":{"seed":1e20}}'), 400, 'INPUT_INVALID'],
  ['10,000 stop strings', () => alice().post('/v1/jobs').send({ ...ok, generation: { stop: Array.from({ length: 10_000 }, (_, i) => `s${i}`) } }), 400, 'INPUT_INVALID'],
  ['a 1 MB metadata value', () => alice().post('/v1/jobs').send({ ...ok, metadata: { note: 'm'.repeat(1 << 20) } }), 400, 'INPUT_INVALID'],
  ['1,000 metadata keys', () => alice().post('/v1/jobs').send({ ...ok, metadata: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, 'v'])) }), 400, 'INPUT_INVALID'],
  // --- prototype pollution
  ['a top-level __proto__ key', () => json('{"text":"hi","task":{"type":"summarize"},"__proto__":{"polluted":"yes"}}'), 400, 'INPUT_INVALID'],
  ['constructor.prototype at the top level', () => json('{"text":"hi","task":{"type":"summarize"},"constructor":{"prototype":{"polluted":"yes"}}}'), 400, 'INPUT_INVALID'],
  ['__proto__ inside task', () => json('{"text":"hi","task":{"type":"summarize","__proto__":{"polluted":"yes"}}}'), 400, 'INPUT_INVALID'],
  ['__proto__ inside generation', () => json('{"text":"hi","task":{"type":"summarize"},"generation":{"__proto__":{"maxNewTokens":100000}}}'), 400, 'INPUT_INVALID'],
  ['__proto__ as a metadata key', () => json('{"text":"hi","task":{"type":"summarize"},"metadata":{"__proto__":{"polluted":"yes"}}}'), 400, 'INPUT_INVALID'],
  // --- bytes: NUL, invalid UTF-8, charsets
  ['a NUL byte in the text', () => alice().post('/v1/jobs').send({ text: 'hello\u0000world', task: { type: 'summarize' } }), 415, 'INPUT_NOT_TEXT'],
  ['invalid UTF-8 bytes in the JSON body', () => json(Buffer.concat([Buffer.from('{"text":"caf'), Buffer.from([0xc3, 0x28, 0xff, 0xfe]), Buffer.from('","task":{"type":"summarize"}}')])), 400, 'INPUT_INVALID_UTF8'],
  ['an overlong UTF-8 encoding of "/"', () => json(Buffer.concat([Buffer.from('{"text":"a'), Buffer.from([0xc0, 0xaf]), Buffer.from('b","task":{"type":"summarize"}}')])), 400, 'INPUT_INVALID_UTF8'],
  ['a UTF-16 surrogate half escaped in JSON', () => json('{"text":"lone \\ud800 half","task":{"type":"summarize"}}'), 400, 'INPUT_INVALID_UTF8'],
  ['a JSON body declared as latin1', () => json('{"text":"hi","task":{"type":"summarize"}}', { 'content-type': 'application/json; charset=latin1' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a gzip Content-Encoding that is not gzip', () => json('{"text":"hi","task":{"type":"summarize"}}', { 'content-encoding': 'gzip' }), 400, 'INPUT_INVALID'],
  ['a text file with NUL bytes', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from('text\u0000\u0000binary'), 'nul.txt'), 415, 'INPUT_NOT_TEXT'],
  ['a text file with invalid UTF-8', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from([0x68, 0x69, 0xff, 0xfe, 0x20, 0x6f, 0x6b]), 'bad.txt'), 400, 'INPUT_INVALID_UTF8'],
  // --- ids and routes
  ['a percent-encoded traversal id', () => alice().get('/v1/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd'), 404, 'NOT_FOUND'],
  ['a job id with a NUL', () => alice().get('/v1/jobs/job_%00abc'), 404, 'NOT_FOUND'],
  ['malformed percent-encoding in an id', () => alice().get('/v1/jobs/%E0%A4%A'), 400, 'INPUT_INVALID'],
  ['a 10 kB job id', () => alice().get(`/v1/jobs/job_${'a'.repeat(10_000)}`), 404, 'NOT_FOUND'],
  ['a traversal document id', () => alice().get('/v1/documents/..%2F..%2F..%2Fetc%2Fpasswd'), 404, 'NOT_FOUND'],
  ['a Redis glob as an id', () => alice().post('/v1/jobs/*/cancel'), 404, 'NOT_FOUND'],
  ['DELETE on the jobs collection', () => alice().delete('/v1/jobs'), 404, 'NOT_FOUND'],
  ['limit=-1', () => alice().get('/v1/jobs?limit=-1'), 400, 'INPUT_INVALID'],
  ['limit=1e9', () => alice().get('/v1/jobs?limit=1e9'), 400, 'INPUT_INVALID'],
  ['limit given twice', () => alice().get('/v1/jobs?limit=1&limit=2'), 400, 'INPUT_INVALID'],
  ['after[$ne]=x (an object query)', () => alice().get('/v1/jobs?after[$ne]=x'), 400, 'INPUT_INVALID'],
  // --- multipart
  ['two files in one multipart request', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from('one'), 'a.txt').attach('file', Buffer.from('two'), 'b.txt'), 400, 'INPUT_INVALID'],
  ['a multipart task field given twice', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').field('task', '{"type":"reconstruct"}').attach('file', Buffer.from('one'), 'a.txt'), 400, 'INPUT_INVALID'],
  ['a multipart task that is not JSON', () => alice().post('/v1/jobs').field('task', '{type: summarize').attach('file', Buffer.from('one'), 'a.txt'), 400, 'INPUT_INVALID'],
  ['a multipart request without a file or text', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}'), 400, 'INPUT_INVALID'],
  ['multipart without a boundary', () => raw('POST', '/v1/jobs', { 'content-type': 'multipart/form-data', authorization: `Bearer ${ALICE}`, 'content-length': 5 }, 'hello'), 400, 'INPUT_INVALID'],
  ['a truncated multipart body', () => {
    const body = '--XyZ\r\nContent-Disposition: form-data; name="task"\r\n\r\n{"ty';
    return raw('POST', '/v1/jobs', { 'content-type': 'multipart/form-data; boundary=XyZ', authorization: `Bearer ${ALICE}`, 'content-length': Buffer.byteLength(body) }, body);
  }, 400, 'INPUT_INVALID'],
  ['a file under another field name', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('document', Buffer.from('one'), 'a.txt'), 400, 'INPUT_INVALID'],
  ['100 multipart fields', () => {
    let t = alice().post('/v1/jobs').field('task', '{"type":"summarize"}');
    for (let i = 0; i < 100; i++) t = t.field(`f${i}`, 'x');
    return t.attach('file', Buffer.from('one'), 'a.txt');
  }, 400, 'INPUT_INVALID'],
  ['a PDF over the page limit', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from(makePdf(['one', 'two', 'three', 'four'])), 'pages.pdf'), 413, 'INPUT_TOO_LARGE'],
  ['a DOCX zip bomb (decompresses over the limit)', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from(makeDocx(['a'.repeat(400_000)])), 'bomb.docx'), 413, 'INPUT_TOO_LARGE'],
  // --- webhook targets (checked on the parsed and resolved address)
  ['a webhook to 127.0.0.1', webhook('http://127.0.0.1:9/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to [::1]', webhook('http://[::1]:9/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 10.0.0.1', webhook('http://10.0.0.1/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 192.168.1.1', webhook('https://192.168.1.1/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 172.16.0.1', webhook('http://172.16.0.1/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 0x7f000001 (hex loopback)', webhook('http://0x7f000001/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 2130706433 (decimal loopback)', webhook('http://2130706433/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 127.1 (short loopback)', webhook('http://127.1/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 0.0.0.0', webhook('http://0.0.0.0/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to [::ffff:127.0.0.1]', webhook('http://[::ffff:127.0.0.1]/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to [::ffff:169.254.169.254]', webhook('http://[::ffff:169.254.169.254]/latest'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to [fd00::1] (unique local)', webhook('http://[fd00::1]/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to [fe80::1] (link-local)', webhook('http://[fe80::1]/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to localhost (a name resolving to loopback)', webhook('http://localhost:9/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to 169.254.169.254 with credentials', webhook('http://user:pass@169.254.169.254/latest'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook with a gopher: scheme', webhook('gopher://127.0.0.1:6379/_FLUSHALL'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook URL of 3000 characters', webhook(`https://example.com/${'p'.repeat(3000)}`), 400, 'INPUT_INVALID'],
  ['a webhook URL that does not parse', webhook('http://[::1'), 400, 'WEBHOOK_URL_FORBIDDEN'],
];

beforeAll(async () => {
  stack = await startStack({
    apiKeys: API_KEYS as unknown as Config['apiKeys'],
    adminApiKey: ADMIN,
    webhookAllowLoopback: false,
    maxPdfPages: 3,
    maxDocxBytes: 100_000,
    rateLimitPerMinute: 10_000,
  });
  // No webhook is ever delivered from this stack: a target wrongly accepted is never contacted.
  await stack.decoder.close();
  stack.decoder.close = async () => {}; // stop() closes it again; a second close throws
  base = stack.api.url;
  aliceJob = (await alice().post('/v1/jobs').send(ok).expect(202)).body.id;
  aliceDoc = (await alice().post('/v1/documents').send({ text: 'A document of alice.' }).expect(202)).body.id;
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe(`hostile input: ${cases.length} malformed or hostile requests, each a documented 4xx`, () => {
  it('has at least 40 distinct cases', () => {
    expect(new Set(cases.map((c) => c[0])).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  for (const [name, send, status, code] of cases) {
    it(name, async () => {
      const res = await send();
      expect(res.status, JSON.stringify(res.body)?.slice(0, 300)).toBe(status);
      if (code !== null) {
        expect(res.body).toEqual({ error: { code, message: expect.any(String), ...(res.body?.error?.details ? { details: expect.anything() } : {}) } });
      }
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
      const health = await request(base).get('/healthz');
      expect(health.status).toBe(200);
    });
  }

  it('the API key of the right tenant still works, and tenants only list their own jobs', async () => {
    const mine = await alice().get('/v1/jobs?limit=100').expect(200);
    expect(mine.body.data.map((j: any) => j.id)).toContain(aliceJob);
    const theirs = await as(BOB).get('/v1/jobs?limit=100').expect(200);
    expect(theirs.body.data.map((j: any) => j.id)).not.toContain(aliceJob);
    await as(ADMIN).get('/admin/queues').expect(200);
    await request(base).get('/healthz').expect(200, { status: 'ok' });
  });
});

describe('limits and backpressure answer 429 with Retry-After', () => {
  // The API alone (no workers), so queued work stays queued; the same Redis and S3 as the stack.
  const withApi = async (overrides: Partial<Record<keyof Config, unknown>>, fn: (api: ApiHandle) => Promise<void>) => {
    const c = stack.config;
    const config = loadConfig(
      {},
      {
        port: 0,
        blobStore: 's3',
        s3Endpoint: c.s3Endpoint,
        s3Bucket: c.s3Bucket,
        s3ForcePathStyle: true,
        s3AccessKeyId: c.s3AccessKeyId,
        s3SecretAccessKey: c.s3SecretAccessKey,
        logLevel: 'warn',
        ...overrides,
      },
    );
    const api = await startApi(config);
    try {
      await fn(api);
    } finally {
      await api.close();
    }
  };
  const expect429 = (res: request.Response, code: string) => {
    expect(res.status, JSON.stringify(res.body)).toBe(429);
    expect(res.body).toEqual({ error: { code, message: expect.any(String), ...(res.body?.error?.details ? { details: expect.anything() } : {}) } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  };

  it('RATE_LIMITED above RATE_LIMIT_PER_MINUTE', async () => {
    await withApi({ redisPrefix: `${stack.config.redisPrefix}-rl`, rateLimitPerMinute: 3 }, async (api) => {
      for (let i = 0; i < 3; i++) await request(api.url).post('/v1/jobs').send(ok).expect(202);
      expect429(await request(api.url).post('/v1/jobs').send(ok), 'RATE_LIMITED');
      expect429(await request(api.url).post('/v1/documents').send({ text: 'doc' }), 'RATE_LIMITED');
      await request(api.url).get('/healthz').expect(200);
    });
  });

  it('RATE_LIMITED above MAX_QUEUED_JOBS_PER_TENANT', async () => {
    await withApi({ redisPrefix: `${stack.config.redisPrefix}-mq`, maxQueuedJobsPerTenant: 2 }, async (api) => {
      for (let i = 0; i < 2; i++) await request(api.url).post('/v1/jobs').send(ok).expect(202);
      expect429(await request(api.url).post('/v1/jobs').send(ok), 'RATE_LIMITED');
    });
  });

  it('OVERLOADED above MAX_ENCODE_QUEUE_DEPTH', async () => {
    await withApi({ redisPrefix: `${stack.config.redisPrefix}-ov`, maxEncodeQueueDepth: 2 }, async (api) => {
      // The API reads the depth at most once a second: fill the queue, wait, then ask again.
      for (let i = 0; i < 4; i++) await request(api.url).post('/v1/jobs').send({ ...ok, text: `${ok.text} ${i}` }).expect(202);
      await new Promise((r) => setTimeout(r, 1100));
      expect429(await request(api.url).post('/v1/jobs').send({ ...ok, text: `${ok.text} over` }), 'OVERLOADED');
      await request(api.url).get('/healthz').expect(200);
    });
  });
});

describe('webhook redirects are never followed', () => {
  let second: Stack;
  let target: Server;
  let redirector: Server;
  const hits: { target: number; redirector: IncomingHttpHeaders[] } = { target: 0, redirector: [] };

  beforeAll(async () => {
    // Both receivers on loopback: the redirect points at a second loopback server standing in for a private address.
    target = createServer((_req, res) => {
      hits.target++;
      res.writeHead(204).end();
    });
    await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
    const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/internal`;
    redirector = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        hits.redirector.push(req.headers);
        res.writeHead(302, { location: targetUrl }).end();
      });
    });
    await new Promise<void>((r) => redirector.listen(0, '127.0.0.1', r));
    second = await startStack({ webhookMaxAttempts: 2, webhookBackoffMs: 50 });
  }, 120_000);

  afterAll(async () => {
    await second?.stop();
    target?.close();
    redirector?.close();
  });

  it('a receiver answering 302 is a failed attempt: retried with the same webhook-id, the Location never fetched', async () => {
    const url = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/hook`;
    const created = await request(second.api.url).post('/v1/jobs').send({ ...ok, generation: { maxNewTokens: 1 }, webhook: { url } }).expect(202);
    const t0 = Date.now();
    while (hits.redirector.length < 2 && Date.now() - t0 > -1 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    expect(hits.redirector.length).toBe(2);
    expect(new Set(hits.redirector.map((h) => h['webhook-id']))).toEqual(new Set([`msg_${created.body.id}_succeeded`]));
    expect(hits.target).toBe(0);
    await request(second.api.url).get('/healthz').expect(200);
  });
});
