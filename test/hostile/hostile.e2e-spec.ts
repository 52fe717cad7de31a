/**
 * Hostile and malformed requests against the composed stack (startStack): every one gets its documented answer (a 4xx
 * in the one error shape `{error: {code, message, details?}}`, or a 202 where the documented policy accepts it),
 * nothing leaks into Object.prototype, and /healthz stays 200 after each. These are distinct from the 21 bad-input
 * cases of test/e2e/pipeline.e2e-spec.ts. Every request is counted (`answered`); the last test asserts there were at
 * least 150 and that none got a 5xx, except the storage faults this file injects itself, which must get 503
 * STORAGE_UNAVAILABLE and nothing else.
 *
 * All traffic is on 127.0.0.1. Webhook targets outside loopback are only ever *submitted* (and must be refused at
 * submission); the stack that could deliver webhooks has its decoder worker closed, so a target wrongly accepted is
 * never contacted. The redirect case runs a second stack whose receivers are both on loopback.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { deflateSync, gzipSync } from 'node:zlib';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHandle } from '@app/api';
import { createBlobStore, type BlobStore } from '@lib/blob-store';
import { makeDocx, makePdf } from '@lib/extract/testing';
import { documentChunksKey, loadConfig, sourceKey, type Config } from '@lib/shared';
import type { HostResolver } from '@lib/webhooks';
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

/** Every hostile request's answer, by section: what the closing count is made of. */
const answered: { section: string; name: string; status: number }[] = [];
/** The one section whose requests meet a fault this file injects into the store: 503 is their documented answer. */
const STORAGE_FAULTS = 'storage faults';
function record<T extends { status: number }>(section: string, name: string, res: T): T {
  answered.push({ section, name, status: res.status });
  return res;
}

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

/** A JSON body with the given key's Authorization (null: none) and headers, to any path. */
const jsonAs = (key: string | null, pathname: string, body: Buffer | string, extra: Record<string, string> = {}) =>
  raw('POST', pathname, { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-length': Buffer.byteLength(body), ...extra }, body);

/** A hand-made multipart body: each part's headers as given (charsets, names supertest would not write). */
function multipartRaw(parts: { name: string; value: string | Buffer; filename?: string; type?: string }[], extra: Record<string, string> = {}, pathname = '/v1/jobs') {
  const boundary = `hostile${randomBytes(6).toString('hex')}`;
  const body = Buffer.concat([
    ...parts.flatMap((p) => [
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n${p.type ? `Content-Type: ${p.type}\r\n` : ''}\r\n`),
      Buffer.isBuffer(p.value) ? p.value : Buffer.from(p.value),
      Buffer.from('\r\n'),
    ]),
    Buffer.from(`--${boundary}--\r\n`),
  ]);
  return raw('POST', pathname, { 'content-type': `multipart/form-data; boundary=${boundary}`, authorization: `Bearer ${ALICE}`, 'content-length': body.length, ...extra }, body);
}

/** multipart/form-data through supertest: one text file and the given form fields. */
const form = (fields: Record<string, string>, pathname = '/v1/jobs') => {
  let t = alice().post(pathname);
  for (const [k, v] of Object.entries(fields)) t = t.field(k, v);
  return t.attach('file', Buffer.from('A short uploaded note about the harbour lantern.'), 'note.txt');
};

/**
 * Declares a body of `declared` bytes, sends only `sent`, and waits for an answer: one that comes proves the server
 * did not wait for (let alone parse) the body. The connection is dropped once answered.
 */
function partialBody(pathname: string, headers: Record<string, string | number>, declared: number, sent: number): Promise<{ status: number; headers: IncomingHttpHeaders; body: any }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer within 10 s with ${sent} of ${declared} bytes sent`)), 10_000);
    const req = httpRequest({ host: url.hostname, port: url.port, method: 'POST', path: pathname, headers: { ...headers, 'content-length': declared } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        clearTimeout(timer);
        req.destroy();
        resolve({ status: res.statusCode!, headers: res.headers, body: text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', () => undefined); // destroyed once answered
    req.write(Buffer.alloc(sent, 0x7b));
  });
}

/** A JSON text in UTF-16 (little- or big-endian, with or without a byte-order mark) or UTF-32LE. */
function utf16(text: string, endian: 'le' | 'be', bom: boolean): Buffer {
  const le = Buffer.from(`${bom ? '\ufeff' : ''}${text}`, 'utf16le');
  return endian === 'le' ? le : le.swap16();
}
function utf32le(text: string): Buffer {
  const out = Buffer.alloc(text.length * 4);
  for (let i = 0; i < text.length; i++) out.writeUInt32LE(text.charCodeAt(i), i * 4);
  return out;
}

const okJson = JSON.stringify(ok);
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
  ['a gzip Content-Encoding that is not gzip', () => json('{"text":"hi","task":{"type":"summarize"}}', { 'content-encoding': 'gzip' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
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

  // --- issue 18, item 8: NUL anywhere in a request's strings, and control characters over the whole text
  ['131 characters of text with one NUL', () => alice().post('/v1/jobs').send({ ...ok, text: `${'a'.repeat(130)}\u0000` }), 415, 'INPUT_NOT_TEXT'],
  ['64k of text, then 100,000 NULs', () => alice().post('/v1/jobs').send({ ...ok, text: `${'t'.repeat(65_536)}${'\u0000'.repeat(100_000)}` }), 415, 'INPUT_NOT_TEXT'],
  ['one NUL at the end of 1 MB of text', () => alice().post('/v1/jobs').send({ ...ok, text: `${'words and more words '.repeat(50_000)}\u0000` }), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in a question', () => alice().post('/v1/jobs').send({ ...ok, task: { type: 'qa', question: 'who\u0000?' } }), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in an instruction', () => alice().post('/v1/jobs').send({ ...ok, task: { type: 'instruct', instruction: 'list\u0000 them' } }), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in a metadata value', () => alice().post('/v1/jobs').send({ ...ok, metadata: { note: 'a\u0000b' } }), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in a metadata key', () => alice().post('/v1/jobs').send({ ...ok, metadata: { 'k\u0000': 'v' } }), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in a stop string', () => alice().post('/v1/jobs').send({ ...ok, generation: { stop: ['end\u0000'] } }), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in a webhook URL', webhook('https://example.com/\u0000hook'), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in the text of a document', () => alice().post('/v1/documents').send({ text: `${'d'.repeat(200)}\u0000` }), 415, 'INPUT_NOT_TEXT'],
  ['a NUL in a question on a stored document', () => alice().post(`/v1/documents/${aliceDoc}/jobs`).send({ task: { type: 'qa', question: 'x\u0000' } }), 415, 'INPUT_NOT_TEXT'],
  ['a multipart task with a NUL in its question', () => form({ task: JSON.stringify({ type: 'qa', question: 'who\u0000?' }) }), 415, 'INPUT_NOT_TEXT'],
  ['a multipart metadata with a NUL', () => form({ task: '{"type":"summarize"}', metadata: '{"note":"a\\u0000b"}' }), 415, 'INPUT_NOT_TEXT'],
  ['an unescaped NUL byte inside a JSON string', () => json(Buffer.from('{"text":"raw\u0000byte","task":{"type":"summarize"}}')), 400, 'INPUT_INVALID'],
  ['10,000 control characters after 64k of clean text', () => alice().post('/v1/jobs').send({ ...ok, text: `${'c'.repeat(65_536)}${'\u0001'.repeat(10_000)}` }), 415, 'INPUT_NOT_TEXT'],
  ['a text file with one NUL after 64k of text', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from(`${'f'.repeat(65_536)}\u0000`), 'late-nul.txt'), 415, 'INPUT_NOT_TEXT'],
  ['a text file that is 12% control characters past 64k', () => alice().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from(`${'f'.repeat(65_536)}${'\u0002'.repeat(9_000)}`), 'late-ctl.txt'), 415, 'INPUT_NOT_TEXT'],
  ['3% terminal escapes spread through a text (a coloured log: accepted)', () => alice().post('/v1/jobs').send({ ...ok, text: Array.from({ length: 300 }, (_, i) => `\u001b[1mline ${i} of the build log, all fine${'.'.repeat(50)}`).join('\n') }), 202, null],

  // --- issue 18, item 9: multipart runs the JSON path's checks (one checkFields for both)
  ['a multipart metadata with __proto__', () => form({ task: '{"type":"summarize"}', metadata: '{"__proto__":{"polluted":"yes"}}' }), 400, 'INPUT_INVALID'],
  ['a multipart metadata with constructor', () => form({ task: '{"type":"summarize"}', metadata: '{"constructor":{"prototype":{"polluted":"yes"}}}' }), 400, 'INPUT_INVALID'],
  ['a multipart metadata with prototype', () => form({ task: '{"type":"summarize"}', metadata: '{"prototype":{"polluted":"yes"}}' }), 400, 'INPUT_INVALID'],
  ['a multipart task with __proto__', () => form({ task: '{"type":"summarize","__proto__":{"polluted":"yes"}}' }), 400, 'INPUT_INVALID'],
  ['a multipart generation with __proto__', () => form({ task: '{"type":"summarize"}', generation: '{"__proto__":{"maxNewTokens":100000}}' }), 400, 'INPUT_INVALID'],
  ['a multipart webhook with __proto__', () => form({ task: '{"type":"summarize"}', webhook: '{"url":"https://example.com/h","__proto__":{"polluted":"yes"}}' }), 400, 'INPUT_INVALID'],
  ['a multipart field named __proto__', () => form({ task: '{"type":"summarize"}', ['__proto__']: '{"polluted":"yes"}' }), 400, 'INPUT_INVALID'],
  ['a multipart field named constructor', () => multipartRaw([{ name: 'task', value: '{"type":"summarize"}' }, { name: 'constructor', value: 'x' }, { name: 'file', value: 'note', filename: 'a.txt' }]), 400, 'INPUT_INVALID'],
  ['a multipart field named metadata[__proto__]', () => multipartRaw([{ name: 'task', value: '{"type":"summarize"}' }, { name: 'metadata[__proto__]', value: 'x' }, { name: 'file', value: 'note', filename: 'a.txt' }]), 400, 'INPUT_INVALID'],
  ['a multipart task with an escaped \\u005f_proto__ key', () => form({ task: '{"type":"summarize","\\u005f_proto__":{"polluted":"yes"}}' }), 400, 'INPUT_INVALID'],
  ['a multipart metadata nested 40 levels', () => form({ task: '{"type":"summarize"}', metadata: `{"a":${nested(40)}}` }), 400, 'INPUT_INVALID'],
  ['a multipart metadata of 100 keys', () => form({ task: '{"type":"summarize"}', metadata: JSON.stringify(Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'v']))) }), 400, 'INPUT_INVALID'],
  ['a multipart document with __proto__ in its metadata', () => form({ metadata: '{"__proto__":{"polluted":"yes"}}' }, '/v1/documents'), 400, 'INPUT_INVALID'],
  ['an escaped \\u005f_proto__ key in JSON', () => json('{"text":"hi","task":{"type":"summarize"},"metadata":{"\\u005f_proto__":{"polluted":"yes"}}}'), 400, 'INPUT_INVALID'],
  ['constructor as a metadata key', () => json('{"text":"hi","task":{"type":"summarize"},"metadata":{"constructor":"x"}}'), 400, 'INPUT_INVALID'],
  ['prototype as a metadata key', () => json('{"text":"hi","task":{"type":"summarize"},"metadata":{"prototype":"x"}}'), 400, 'INPUT_INVALID'],
  ['__proto__ inside an array inside metadata', () => json('{"text":"hi","task":{"type":"summarize"},"metadata":{"list":[1,{"__proto__":{"polluted":"yes"}}]}}'), 400, 'INPUT_INVALID'],
  ['__proto__ in a document create', () => jsonAs(ALICE, '/v1/documents', '{"text":"hi","__proto__":{"polluted":"yes"}}'), 400, 'INPUT_INVALID'],
  ['__proto__ in a job on a stored document', () => jsonAs(ALICE, `/v1/documents/${aliceDoc}/jobs`, '{"task":{"type":"summarize","__proto__":{"polluted":"yes"}}}'), 400, 'INPUT_INVALID'],
  ['metadata nested 33 levels in JSON', () => json(`{"text":"hi","task":{"type":"summarize"},"metadata":{"a":${nested(33)}}}`), 400, 'INPUT_INVALID'],

  // --- issue 18, item 10: authentication comes before the body is read
  ['no key and a malformed JSON body', () => jsonAs(null, '/v1/jobs', '{"text": '), 401, 'UNAUTHORIZED'],
  ['no key and a JSON array body', () => jsonAs(null, '/v1/jobs', '[1,2,3]'), 401, 'UNAUTHORIZED'],
  ['no key and a UTF-16 body', () => jsonAs(null, '/v1/jobs', utf16(okJson, 'le', true)), 401, 'UNAUTHORIZED'],
  ['no key and an unsupported content type', () => raw('POST', '/v1/jobs', { 'content-type': 'text/xml', 'content-length': 7 }, '<x></x>'), 401, 'UNAUTHORIZED'],
  ['no key and a gzip Content-Encoding', () => jsonAs(null, '/v1/jobs', gzipSync(okJson), { 'content-encoding': 'gzip' }), 401, 'UNAUTHORIZED'],
  ['no key and a truncated multipart body', () => raw('POST', '/v1/jobs', { 'content-type': 'multipart/form-data; boundary=XyZ', 'content-length': 30 }, '--XyZ\r\nContent-Disposition: fo'), 401, 'UNAUTHORIZED'],
  ['no key and a NUL in the text', () => jsonAs(null, '/v1/jobs', JSON.stringify({ ...ok, text: 'a\u0000' })), 401, 'UNAUTHORIZED'],
  ['a wrong key and 1,000,000 levels of nested arrays', () => jsonAs('not-a-key', '/v1/jobs', `{"text":"hi","task":${nested(1_000_000)}}`), 401, 'UNAUTHORIZED'],
  ['no key and a body declared at 25 MB (over the limit), 1 kB sent', () => partialBody('/v1/jobs', { 'content-type': 'application/json' }, 25 * 1024 * 1024, 1024), 401, 'UNAUTHORIZED'],
  ['no key and a body declared at 20 MB, 64 kB sent', () => partialBody('/v1/jobs', { 'content-type': 'application/json' }, 20 * 1024 * 1024 - 1, 64 * 1024), 401, 'UNAUTHORIZED'],
  ['no key, a multipart body declared at 20 MB, 64 kB sent', () => partialBody('/v1/documents', { 'content-type': 'multipart/form-data; boundary=XyZ' }, 20 * 1024 * 1024 - 1, 64 * 1024), 401, 'UNAUTHORIZED'],
  ['no key and a malformed document create', () => jsonAs(null, '/v1/documents', '{"text": '), 401, 'UNAUTHORIZED'],
  ['no key and a malformed job on a stored document', () => jsonAs(null, `/v1/documents/${aliceDoc}/jobs`, '{"task": '), 401, 'UNAUTHORIZED'],

  // --- issue 18, item 11: UTF-8 only, no content or transfer coding but identity and chunked
  ['charset=utf-16le without a byte-order mark', () => json(utf16(okJson, 'le', false), { 'content-type': 'application/json; charset=utf-16le' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['charset=utf-16le with a byte-order mark', () => json(utf16(okJson, 'le', true), { 'content-type': 'application/json; charset=utf-16le' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['charset=utf-16 (big-endian with a byte-order mark)', () => json(utf16(okJson, 'be', true), { 'content-type': 'application/json; charset=utf-16' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['charset=utf-32', () => json(utf32le(okJson), { 'content-type': 'application/json; charset=utf-32' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['charset=iso-8859-1', () => json(okJson, { 'content-type': 'application/json; charset=iso-8859-1' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a quoted charset="utf-16le"', () => json(utf16(okJson, 'le', false), { 'content-type': 'application/json; charset="utf-16le"' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a UTF-16LE body with a byte-order mark, no charset', () => json(utf16(okJson, 'le', true)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a UTF-16BE body with a byte-order mark, no charset', () => json(utf16(okJson, 'be', true)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a UTF-16LE body without a byte-order mark or charset', () => json(utf16(okJson, 'le', false)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a UTF-16BE body without a byte-order mark or charset', () => json(utf16(okJson, 'be', false)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a UTF-32LE body, no charset', () => json(utf32le(okJson)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a real gzip body with Content-Encoding: gzip', () => json(gzipSync(okJson), { 'content-encoding': 'gzip' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a real deflate body with Content-Encoding: deflate', () => json(deflateSync(okJson), { 'content-encoding': 'deflate' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['Content-Encoding: br', () => json(okJson, { 'content-encoding': 'br' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['Content-Encoding: gzip, identity', () => json(okJson, { 'content-encoding': 'gzip, identity' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['Transfer-Encoding: gzip, chunked with a plain body', () => raw('POST', '/v1/jobs', { 'content-type': 'application/json', authorization: `Bearer ${ALICE}`, 'transfer-encoding': 'gzip, chunked' }, okJson), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['Transfer-Encoding: deflate, chunked', () => raw('POST', '/v1/jobs', { 'content-type': 'application/json', authorization: `Bearer ${ALICE}`, 'transfer-encoding': 'deflate, chunked' }, deflateSync(okJson)), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a multipart body with Content-Encoding: gzip', () => form({ task: '{"type":"summarize"}' }).set('content-encoding', 'gzip'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a multipart body declared charset=utf-16', () => raw('POST', '/v1/jobs', { 'content-type': 'multipart/form-data; boundary=XyZ; charset=utf-16', authorization: `Bearer ${ALICE}`, 'content-length': 9 }, '--XyZ--\r\n'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['charset=utf-16le on a document create', () => jsonAs(ALICE, '/v1/documents', utf16('{"text":"hi"}', 'le', false), { 'content-type': 'application/json; charset=utf-16le' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['a gzip body on a job on a stored document', () => jsonAs(ALICE, `/v1/documents/${aliceDoc}/jobs`, gzipSync('{"task":{"type":"summarize"}}'), { 'content-encoding': 'gzip' }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
  ['charset=UTF-8 in upper case (accepted)', () => json(okJson, { 'content-type': 'application/json; charset=UTF-8' }), 202, null],
  ['a UTF-8 byte-order mark before the JSON (accepted)', () => json(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(okJson)])), 202, null],
  ['Content-Encoding: identity (accepted)', () => json(okJson, { 'content-encoding': 'identity' }), 202, null],
  ['a small chunked JSON body (accepted)', () => raw('POST', '/v1/jobs', { 'content-type': 'application/json', authorization: `Bearer ${ALICE}`, 'transfer-encoding': 'chunked' }, okJson), 202, null],

  // --- issue 18, item 12: webhook host names judged at submission, as at delivery
  ['a webhook to metadata.google.internal', webhook('http://metadata.google.internal/computeMetadata/v1/'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to metadata.google.internal. (trailing dot)', webhook('http://metadata.google.internal./computeMetadata/v1/'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to METADATA.GOOGLE.INTERNAL', webhook('http://METADATA.GOOGLE.INTERNAL/computeMetadata/v1/'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to instance-data', webhook('http://instance-data/latest/meta-data/'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to instance-data.ec2.internal', webhook('http://instance-data.ec2.internal/latest/'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to metadata (one label)', webhook('http://metadata/computeMetadata/v1/'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ["a webhook to this host's own name (from /etc/hosts)", () => alice().post('/v1/jobs').send({ ...ok, webhook: { url: `http://${os.hostname()}:9/hook` } }), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to printer.local (mDNS)', webhook('http://printer.local/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to router.home.arpa', webhook('http://router.home.arpa/hook'), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a webhook to metadata.google.internal on a stored document', () => alice().post(`/v1/documents/${aliceDoc}/jobs`).send({ task: { type: 'summarize' }, webhook: { url: 'http://metadata.google.internal/' } }), 400, 'WEBHOOK_URL_FORBIDDEN'],
  ['a multipart webhook to instance-data', () => form({ task: '{"type":"summarize"}', webhook: '{"url":"http://instance-data/latest/"}' }), 400, 'WEBHOOK_URL_FORBIDDEN'],
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

describe(`hostile input: ${cases.length} malformed or hostile requests, each answered as documented`, () => {
  it('has at least 150 distinct cases', () => {
    expect(new Set(cases.map((c) => c[0])).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(150);
  });

  for (const [name, send, status, code] of cases) {
    it(name, async () => {
      const res = record('cases', name, await send());
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

  it('MAX_QUEUED_JOBS_PER_TENANT holds under a burst: requests still being read and planned count against it', async () => {
    await withApi({ redisPrefix: `${stack.config.redisPrefix}-mqb`, maxQueuedJobsPerTenant: 3 }, async (api) => {
      // Ten at once: each is planned for a while before its job exists, so a cap counting created jobs alone let all in.
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => request(api.url).post('/v1/jobs').send({ ...ok, text: `${ok.text} burst ${i}` })));
      expect(answers.filter((a) => a.status === 202)).toHaveLength(3);
      for (const a of answers.filter((x) => x.status !== 202)) expect429(a, 'RATE_LIMITED');
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

/** A configuration for an extra API on the stack's S3 and Redis (no workers), under a Redis prefix of its own. */
function extraApiConfig(suffix: string, overrides: Partial<Record<keyof Config, unknown>> = {}): Config {
  const c = stack.config;
  return loadConfig(
    {},
    {
      port: 0,
      redisPrefix: `${c.redisPrefix}-${suffix}`,
      blobStore: 's3',
      s3Endpoint: c.s3Endpoint,
      s3Bucket: c.s3Bucket,
      s3ForcePathStyle: true,
      s3AccessKeyId: c.s3AccessKeyId,
      s3SecretAccessKey: c.s3SecretAccessKey,
      webhookSecret: c.webhookSecret,
      logLevel: 'error',
      ...overrides,
    },
  );
}

describe('issue 18, item 10: twenty unauthenticated 20 MB bodies are answered 401 unread', () => {
  it('answers all twenty while each has sent 64 kB of its 20 MB', async () => {
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => partialBody('/v1/jobs', { 'content-type': 'application/json' }, 20 * 1024 * 1024 - 1, 64 * 1024)),
    );
    for (const [i, res] of answers.entries()) {
      record('unauthenticated bodies', `20 MB body ${i}`, res);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('UNAUTHORIZED');
    }
    // Answered with 1.3 MB of the 400 MB declared on the wire: nothing waited for a body, let alone parsed one.
    expect(Date.now() - started).toBeLessThan(10_000);
    await request(base).get('/healthz').expect(200);
  });
});

describe('issue 18, item 6: a stored document whose chunk references are damaged', () => {
  let blobs: BlobStore;
  const docs: { id: string; chunks: number }[] = [];
  const text = 'The lantern keeper of the northern harbour kept a log of every ship. '.repeat(40);

  beforeAll(async () => {
    blobs = createBlobStore(stack.config);
    for (let i = 0; i < 11; i++) {
      const res = await alice().post('/v1/documents').send({ text: `${text} Copy ${i}.` }).expect(202);
      docs.push({ id: res.body.id, chunks: res.body.chunks });
    }
  });
  afterAll(async () => {
    await blobs?.close?.();
  });

  const ask = (i: number) => alice().post(`/v1/documents/${docs[i]!.id}/jobs`).send({ task: { type: 'qa', question: 'Who kept the log?' } });
  const refsOf = async (i: number) => JSON.parse((await blobs.get(documentChunksKey(docs[i]!.id))).toString('utf8'));

  // Each is a cache of the cut that fails its checks: the text is cut again and the job is accepted as if it were whole.
  const damaged: [string, (i: number) => Promise<Buffer | string>][] = [
    ['truncated to half its length', async (i) => (await blobs.get(documentChunksKey(docs[i]!.id))).subarray(0, 40)],
    ['not JSON (random bytes)', async () => randomBytes(300)],
    ['the JSON null', async () => 'null'],
    ['an empty file', async () => ''],
    ['chunks that are not all there', async (i) => JSON.stringify({ ...(await refsOf(i)), chunks: (await refsOf(i)).chunks + 3 })],
    ['a chunk past the end of the text', async (i) => {
      const r = await refsOf(i);
      r.batches[0][0].end = r.chars + 1000;
      return JSON.stringify(r);
    }],
    ['a chunk given twice', async (i) => {
      const r = await refsOf(i);
      r.batches[0].push({ ...r.batches[0][0] });
      r.chunks += 1;
      return JSON.stringify(r);
    }],
    ['a string where a number belongs', async (i) => JSON.stringify({ ...(await refsOf(i)), chars: 'many' })],
  ];

  damaged.forEach(([name, corrupt], i) => {
    it(`${name}: the text is cut again, 202 with the document's own chunk count`, async () => {
      await blobs.put(documentChunksKey(docs[i]!.id), await corrupt(i));
      const res = record('corrupt documents', name, await ask(i));
      expect(res.status, JSON.stringify(res.body)).toBe(202);
      expect(res.body.progress.chunksTotal).toBe(docs[i]!.chunks);
    });
  });

  it('damaged references and a lost text: 409 DOCUMENT_CORRUPT, never 500', async () => {
    const i = 8;
    await blobs.put(documentChunksKey(docs[i]!.id), '{"v":2,"trunc');
    await blobs.delete(sourceKey(docs[i]!.id));
    const res = record('corrupt documents', 'lost text', await ask(i));
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body).toEqual({ error: { code: 'DOCUMENT_CORRUPT', message: expect.stringContaining('upload it again') } });
    expect(JSON.stringify(res.body)).not.toMatch(/sources\/|chunk-refs|s3|bucket/i);
  });

  it('damaged references and a text that is no longer UTF-8: 409 DOCUMENT_CORRUPT', async () => {
    const i = 9;
    await blobs.put(documentChunksKey(docs[i]!.id), 'garbage');
    await blobs.put(sourceKey(docs[i]!.id), Buffer.from([0x68, 0x69, 0xff, 0xfe, 0xc0, 0xaf]));
    const res = record('corrupt documents', 'text not UTF-8', await ask(i));
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error.code).toBe('DOCUMENT_CORRUPT');
  });

  it('no references and no text: 409 DOCUMENT_CORRUPT', async () => {
    const i = 10;
    await blobs.delete(documentChunksKey(docs[i]!.id));
    await blobs.delete(sourceKey(docs[i]!.id));
    const res = record('corrupt documents', 'nothing left', await ask(i));
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error.code).toBe('DOCUMENT_CORRUPT');
    await request(base).get('/healthz').expect(200);
  });
});

describe('issue 18, item 12: webhook names resolved at submission (a resolver standing in for DNS)', () => {
  let api: ApiHandle;
  // Names that only DNS can judge: they look public, and resolve to what an attacker chose.
  const dns: Record<string, string[]> = {
    'metadata.attacker.example': ['169.254.169.254'],
    'rebind.attacker.example': ['127.0.0.1'],
    'lan.attacker.example': ['10.20.30.40'],
    'mixed.attacker.example': ['93.184.216.34', '::1'],
    'v6meta.attacker.example': ['fd00:ec2::254'],
    'hooks.customer.example': ['93.184.216.34'],
  };
  const resolveHost: HostResolver = async (host) => {
    const addresses = dns[host];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };

  beforeAll(async () => {
    api = await startApi(extraApiConfig('dns', { webhookAllowLoopback: false, webhookAllowPrivate: false }), { resolveHost });
  });
  afterAll(async () => {
    await api?.close();
  });

  it.each([
    ['http://metadata.attacker.example/latest/meta-data/', 400],
    ['http://rebind.attacker.example:6379/', 400],
    ['https://lan.attacker.example/hook', 400],
    ['https://mixed.attacker.example/hook', 400],
    ['https://v6meta.attacker.example/hook', 400],
    ['https://hooks.customer.example/hook', 202],
    ['https://not-published-yet.customer.example/hook', 202],
  ])('%s: %i', async (url, status) => {
    const res = record('webhook names', url, await request(api.url).post('/v1/jobs').send({ ...ok, webhook: { url } }));
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    if (status === 400) expect(res.body.error.code).toBe('WEBHOOK_URL_FORBIDDEN');
  });
});

describe('issue 18, item 7: storage faults are 503 STORAGE_UNAVAILABLE without internals, and /readyz says so', () => {
  const expectUnavailable = (res: request.Response) => {
    expect(res.status, JSON.stringify(res.body)).toBe(503);
    // The code and a fixed message; no key, folder, bucket or driver; Retry-After to come back.
    expect(res.body).toEqual({ error: { code: 'STORAGE_UNAVAILABLE', message: 'the blob store is unavailable; retry later' } });
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
  };
  const localApi = async (dataDir: string) => {
    return startApi(extraApiConfig('st', { blobStore: 'local', dataDir }));
  };

  it('DATA_DIR/sources replaced by a file: creates answer 503, /readyz 503 naming the blob store, then both recover', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'hostile-store-'));
    const api = await localApi(dataDir);
    try {
      const http = () => request(api.url);
      record(STORAGE_FAULTS, 'healthy create', await http().post('/v1/jobs').send(ok).expect(202));
      await rm(path.join(dataDir, 'sources'), { recursive: true, force: true });
      await writeFile(path.join(dataDir, 'sources'), 'a file where the folder was');

      expectUnavailable(record(STORAGE_FAULTS, 'job create, sources a file', await http().post('/v1/jobs').send(ok)));
      expectUnavailable(record(STORAGE_FAULTS, 'document create, sources a file', await http().post('/v1/documents').send({ text: 'doc' })));
      expectUnavailable(record(STORAGE_FAULTS, 'multipart create, sources a file', await http().post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from('a note'), 'n.txt')));
      const ready = record(STORAGE_FAULTS, 'readyz, sources a file', await http().get('/readyz'));
      expect(ready.status).toBe(503);
      expect(ready.body.checks.blobStore).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
      expect(ready.body.checks.redis.ok).toBe(true);
      // What needs no blob still works.
      record(STORAGE_FAULTS, 'list while broken', await http().get('/v1/jobs').expect(200));
      record(STORAGE_FAULTS, 'healthz while broken', await http().get('/healthz').expect(200));

      await rm(path.join(dataDir, 'sources'));
      record(STORAGE_FAULTS, 'readyz repaired', await http().get('/readyz').expect(200));
      record(STORAGE_FAULTS, 'create repaired', await http().post('/v1/jobs').send(ok).expect(202));

      // The same for the chunk references of documents.
      await rm(path.join(dataDir, 'chunk-refs'), { recursive: true, force: true });
      await writeFile(path.join(dataDir, 'chunk-refs'), 'not a folder');
      expectUnavailable(record(STORAGE_FAULTS, 'document create, chunk-refs a file', await http().post('/v1/documents').send({ text: 'doc' })));
      expect(record(STORAGE_FAULTS, 'readyz, chunk-refs a file', await http().get('/readyz')).status).toBe(503);
    } finally {
      await api.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('an S3 endpoint answering 500 to everything: 503 without bucket, key or driver; /readyz 503', async () => {
    let hits = 0;
    const broken = createServer((req, res) => {
      hits++;
      req.resume();
      res.writeHead(500, { 'content-type': 'application/xml' }).end('<?xml version="1.0"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>');
    });
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', r));
    const api = await startApi(extraApiConfig('s5', { s3Endpoint: `http://127.0.0.1:${(broken.address() as AddressInfo).port}` }));
    try {
      expectUnavailable(record(STORAGE_FAULTS, 'S3 500: job create', await request(api.url).post('/v1/jobs').send(ok)));
      expectUnavailable(record(STORAGE_FAULTS, 'S3 500: document create', await request(api.url).post('/v1/documents').send({ text: 'doc' })));
      const ready = record(STORAGE_FAULTS, 'S3 500: readyz', await request(api.url).get('/readyz'));
      expect(ready.status).toBe(503);
      expect(ready.body.checks.blobStore).toMatchObject({ ok: false, code: 'STORAGE_UNAVAILABLE' });
      expect(hits).toBeGreaterThan(0);
    } finally {
      await api.close();
      broken.close();
    }
  });
});

describe('the count (issue 18: at least 150 hostile requests, none answered 5xx)', () => {
  it('answered at least 150 hostile requests; 0 got a 5xx but the injected storage faults, and those only 503', () => {
    const total = answered.length;
    const serverErrors = answered.filter((a) => a.status >= 500 && a.section !== STORAGE_FAULTS);
    const faults = answered.filter((a) => a.section === STORAGE_FAULTS && a.status >= 500);
    const bySection = Object.fromEntries([...new Set(answered.map((a) => a.section))].map((s) => [s, answered.filter((a) => a.section === s).length]));
    const byStatus: Record<number, number> = {};
    for (const a of answered) byStatus[a.status] = (byStatus[a.status] ?? 0) + 1;
    console.log(
      `hostile requests: ${total} (${JSON.stringify(bySection)}); by status ${JSON.stringify(byStatus)}; 5xx outside the injected storage faults: ${serverErrors.length}; injected-fault 5xx: ${faults.length}, all 503: ${faults.every((a) => a.status === 503)}`,
    );
    expect(total).toBeGreaterThanOrEqual(150);
    expect(serverErrors).toEqual([]);
    expect(faults.every((a) => a.status === 503)).toBe(true);
  });
});
