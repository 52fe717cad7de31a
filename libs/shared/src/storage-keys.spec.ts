import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError, type ErrorCode } from './errors.js';
import { chunkHash, chunkIdsKey, documentChunksKey, resultKey, softPromptKey, softPromptTenantPrefix, sourceKey, STORAGE_NAMESPACES } from './storage-keys.js';
import { codeOf } from '../test/error-code.js';

const HASH = 'a'.repeat(64);

const HOSTILE_IDS = [
  '../x',
  '..',
  '.',
  'a/b',
  '/abs',
  'a\\b',
  '',
  'x'.repeat(200),
  'x'.repeat(129),
  'a\u0000b',
  '%2e%2e',
  '%2F',
  'a b',
  'a.b',
  '-leading-dash',
  '_leading-underscore',
  'trailing-newline\n',
  'é',
  'a?b',
  'a#b',
  'a:b',
  '*',
];

describe('key shapes', () => {
  it('sourceKey is sources/<jobId>', () => {
    expect(sourceKey('job-123_ABC')).toBe('sources/job-123_ABC');
  });

  it('resultKey is results/<jobId>.json', () => {
    expect(resultKey('job-123_ABC')).toBe('results/job-123_ABC.json');
  });

  it('documentChunksKey is chunk-refs/<documentId>.json, and refuses a hostile id', () => {
    expect(documentChunksKey('doc_1')).toBe('chunk-refs/doc_1.json');
    expect(codeOf(() => documentChunksKey('../x'))).toBe('INPUT_INVALID');
  });

  it('softPromptKey is soft-prompts/<tenant>/<encoderId>/<hash>', () => {
    const hash = chunkHash('enc1', 'some text');
    expect(softPromptKey('tenant-1', 'enc1', hash)).toBe(`soft-prompts/tenant-1/enc1/${hash}`);
  });

  it('softPromptTenantPrefix starts every soft-prompt key of the tenant, and no other tenant\'s', () => {
    const hash = chunkHash('enc1', 'some text');
    expect(softPromptKey('t1', 'enc1', hash).startsWith(softPromptTenantPrefix('t1'))).toBe(true);
    expect(softPromptKey('t10', 'enc1', hash).startsWith(softPromptTenantPrefix('t1'))).toBe(false);
    expect(() => softPromptTenantPrefix('../x')).toThrow(AppError);
  });

  it('softPromptKey separates tenants: the same chunk gives different keys', () => {
    const hash = chunkHash('enc1', 'some text');
    expect(softPromptKey('tenant-a', 'enc1', hash)).not.toBe(softPromptKey('tenant-b', 'enc1', hash));
  });

  it('accepts ids up to 128 characters', () => {
    const id = 'x'.repeat(128);
    expect(sourceKey(id)).toBe(`sources/${id}`);
    expect(resultKey(id)).toBe(`results/${id}.json`);
    expect(softPromptKey(id, id, HASH)).toBe(`soft-prompts/${id}/${id}/${HASH}`);
  });

  it('accepts a UUID (what the server generates)', () => {
    const id = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
    expect(sourceKey(id)).toBe(`sources/${id}`);
  });
});

describe('hostile ids are INPUT_INVALID', () => {
  it.each(HOSTILE_IDS.map((id) => [JSON.stringify(id), id]))('%s', (_shown, id) => {
    expect(codeOf(() => sourceKey(id))).toBe('INPUT_INVALID');
    expect(codeOf(() => resultKey(id))).toBe('INPUT_INVALID');
    expect(codeOf(() => softPromptKey(id, 'enc1', HASH))).toBe('INPUT_INVALID');
    expect(codeOf(() => softPromptKey('tenant-1', id, HASH))).toBe('INPUT_INVALID');
  });

  it.each([
    ['empty', ''],
    ['63 hex chars', 'a'.repeat(63)],
    ['65 hex chars', 'a'.repeat(65)],
    ['upper-case hex', 'A'.repeat(64)],
    ['non-hex', 'g'.repeat(64)],
    ['path', `../${'a'.repeat(61)}`],
    ['trailing newline', `${'a'.repeat(64)}\n`],
  ])('a chunk hash that is not 64 lower-case hex chars (%s)', (_what, hash) => {
    expect(codeOf(() => softPromptKey('tenant-1', 'enc1', hash))).toBe('INPUT_INVALID');
  });

  it('does not echo the hostile id in the message', () => {
    let message = '';
    try {
      sourceKey('../../etc/passwd');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).not.toBe('');
    expect(message).not.toContain('passwd');
  });
});

describe('chunkHash', () => {
  it('is 64 lower-case hex chars', () => {
    expect(chunkHash('enc1', 'hello')).toMatch(/^[0-9a-f]{64}$/);
    expect(chunkHash('', '')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is deterministic', () => {
    expect(chunkHash('enc1', 'hello world')).toBe(chunkHash('enc1', 'hello world'));
  });

  it('matches sha256 over encoderId, a NUL separator and the UTF-8 text', () => {
    const want = createHash('sha256').update(Buffer.from('enc1\u0000héllo 🙂', 'utf8')).digest('hex');
    expect(chunkHash('enc1', 'héllo 🙂')).toBe(want);
  });

  it('differs by encoder id', () => {
    expect(chunkHash('enc1', 'hello')).not.toBe(chunkHash('enc2', 'hello'));
  });

  it('differs by text, even by one character or trailing whitespace', () => {
    expect(chunkHash('enc1', 'hello')).not.toBe(chunkHash('enc1', 'hellp'));
    expect(chunkHash('enc1', 'hello')).not.toBe(chunkHash('enc1', 'hello '));
  });

  it('keeps the encoder id and the text apart (no shifting of characters across the boundary)', () => {
    expect(chunkHash('ab', 'c')).not.toBe(chunkHash('a', 'bc'));
    expect(chunkHash('enc1', '')).not.toBe(chunkHash('enc', '1'));
  });

  it('feeds softPromptKey', () => {
    expect(() => softPromptKey('tenant-1', 'enc1', chunkHash('enc1', 'text'))).not.toThrow();
  });
});

describe('STORAGE_NAMESPACES', () => {
  it('is exactly the first segments of the keys the functions make (what the local store probes for readiness)', () => {
    const firsts = [sourceKey('j1'), softPromptKey('t', 'e', HASH), resultKey('j1'), documentChunksKey('d1'), chunkIdsKey('j1')].map((k) => k.split('/')[0]);
    expect([...STORAGE_NAMESPACES].sort()).toEqual([...new Set(firsts)].sort());
  });
});
