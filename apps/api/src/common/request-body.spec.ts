import { describe, expect, it } from 'vitest';
import { AppError } from '@lib/shared';
import { publicError } from './app-error.filter.js';
import { checkFields, checkFraming, MAX_JSON_DEPTH, MAX_JSON_ITEMS, scanJson } from './request-body.js';

function caught(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}
const framing = (headers: Record<string, string | undefined>) => () => checkFraming({ headers });

describe('checkFraming: one charset (UTF-8), no coding but identity and chunked (issue 18 item 11)', () => {
  it.each([
    [{ 'content-type': 'application/json' }, 'application/json'],
    [{ 'content-type': 'Application/JSON; charset=UTF-8' }, 'application/json'],
    [{ 'content-type': 'application/json; charset="utf-8"' }, 'application/json'],
    [{ 'content-type': 'application/json;charset=utf8' }, 'application/json'],
    [{ 'content-type': 'application/json', 'content-encoding': 'identity' }, 'application/json'],
    [{ 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, 'application/json'],
    [{ 'content-type': 'multipart/form-data; boundary=x' }, 'multipart/form-data'],
    [{}, ''],
  ])('accepts %j', (headers, type) => {
    expect(checkFraming({ headers }).type).toBe(type);
  });

  it.each([
    { 'content-type': 'application/json; charset=utf-16le' },
    { 'content-type': 'application/json; charset=utf-16' },
    { 'content-type': 'application/json; charset="UTF-32"' },
    { 'content-type': 'application/json; charset=latin1' },
    { 'content-type': 'application/json', 'content-encoding': 'gzip' },
    { 'content-type': 'application/json', 'content-encoding': 'identity, br' },
    { 'content-type': 'multipart/form-data; boundary=x', 'content-encoding': 'deflate' },
    { 'content-type': 'application/json', 'transfer-encoding': 'gzip, chunked' },
    { 'content-type': 'application/json', 'transfer-encoding': 'compress, chunked' },
  ])('refuses %j with 415 UNSUPPORTED_MEDIA_TYPE', (headers) => {
    expect(caught(framing(headers)).code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('reports a multipart charset other than UTF-8 (readBody refuses it)', () => {
    expect(checkFraming({ headers: { 'content-type': 'multipart/form-data; boundary=x; charset=utf-16' } }).charset).toBe('utf-16');
    expect(checkFraming({ headers: { 'content-type': 'multipart/form-data; boundary=x; charset=utf-8' } }).charset).toBeUndefined();
  });
});

describe('scanJson: depth and items bounded before JSON.parse', () => {
  it('passes ordinary requests, strings with brackets, commas and escaped quotes included', () => {
    scanJson(JSON.stringify({ text: '[[[{{{,,,"\\"]]]'.repeat(10_000), task: { type: 'qa', question: 'a "quoted" \\ thing' }, generation: { stop: ['a', 'b'] } }));
    scanJson('{"text":"unterminated'); // malformed text is JSON.parse's to refuse
  });

  it('refuses nesting deeper than MAX_JSON_DEPTH and more than MAX_JSON_ITEMS items', () => {
    expect(caught(() => scanJson('['.repeat(MAX_JSON_DEPTH + 1))).code).toBe('INPUT_INVALID');
    scanJson('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH));
    expect(caught(() => scanJson(`[${'0,'.repeat(MAX_JSON_ITEMS)}0]`)).message).toContain(`${MAX_JSON_ITEMS} JSON items`);
    expect(caught(() => scanJson(`{"a":${'['.repeat(1_000_000)}`)).code).toBe('INPUT_INVALID');
  });
});

describe('checkFields: the one value check of JSON bodies and multipart fields (issue 18 items 8, 9)', () => {
  it.each([
    ['{"__proto__":{"polluted":1}}', 'INPUT_INVALID'],
    ['{"metadata":{"constructor":"x"}}', 'INPUT_INVALID'],
    ['{"metadata":{"prototype":"x"}}', 'INPUT_INVALID'],
    ['{"task":{"\\u005f_proto__":{}}}', 'INPUT_INVALID'],
    ['{"metadata":{"list":[1,[{"__proto__":1}]]}}', 'INPUT_INVALID'],
    ['{"text":"a\\u0000b"}', 'INPUT_NOT_TEXT'],
    ['{"metadata":{"k\\u0000":"v"}}', 'INPUT_NOT_TEXT'],
    ['{"generation":{"stop":["x","\\u0000"]}}', 'INPUT_NOT_TEXT'],
  ])('refuses %s: %s', (text, code) => {
    expect(caught(() => checkFields(JSON.parse(text))).code).toBe(code);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('sees a field named __proto__ when fields are built with fromEntries (as multipart fields are)', () => {
    expect(caught(() => checkFields(Object.fromEntries([['task', {}], ['__proto__', 'x']]))).code).toBe('INPUT_INVALID');
  });

  it('names where the problem is', () => {
    expect(caught(() => checkFields(JSON.parse('{"metadata":{"list":[1,{"x":"a\\u0000"}]}}'))).message).toContain('metadata.list[1].x');
  });

  it('refuses nesting deeper than MAX_JSON_DEPTH without recursing', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(caught(() => checkFields({ metadata: deep })).code).toBe('INPUT_INVALID');
  });

  it('returns an ordinary request unchanged', () => {
    const body = { text: 'A note.\tWith a tab and \u001b escapes.', task: { type: 'summarize' }, metadata: { a: [1, 'b', null, { c: true }] } };
    expect(checkFields(body)).toBe(body);
  });
});

describe('publicError: a 5xx answers its code, never its internals (issue 18 item 7)', () => {
  it('drops the key, bucket and driver of a storage fault, and keeps a retry hint', () => {
    const raised = new AppError('STORAGE_UNAVAILABLE', 'local blob store put sources/job_1 failed (ENOTDIR)', { driver: 'local', operation: 'put', key: 'sources/job_1', errno: 'ENOTDIR' });
    expect(publicError(raised).toJSON()).toEqual({ code: 'STORAGE_UNAVAILABLE', message: 'the blob store is unavailable; retry later' });
    const queue = new AppError('QUEUE_UNAVAILABLE', 'the job could not be queued: Connection is closed.', { retryAfterSeconds: 5 });
    expect(publicError(queue).toJSON()).toEqual({ code: 'QUEUE_UNAVAILABLE', message: 'the queue (Redis) is unavailable; retry later', details: { retryAfterSeconds: 5 } });
    expect(publicError(new AppError('MODEL_INVALID', 'cannot read /models/x/manifest.json')).message).not.toContain('/models');
  });

  it('leaves a 4xx as raised: its message and details are about the request', () => {
    const invalid = new AppError('INPUT_INVALID', 'invalid request: task: required', { issues: [{ path: 'task', message: 'required' }] });
    expect(publicError(invalid)).toBe(invalid);
  });
});
