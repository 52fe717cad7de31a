import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { BUNDLED_MODEL_PATH } from '@lib/shared';
import { main } from './main.js';

const SAMPLE = fileURLToPath(new URL('../../../samples/gpl-3.0.txt', import.meta.url));

async function cli(argv: string[], env: Record<string, string> = {}) {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env });
  return { code, stdout, stderr };
}

let dir: string;
async function file(name: string, content: string | Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, content);
  return path;
}

/** A copy of the bundled package (files linked, not copied) with some files left out and the manifest changed. */
async function variantPackage(change: (m: Record<string, any>) => void, omit: string[] = []): Promise<string> {
  const out = await mkdtemp(join(dir, 'model-'));
  for (const f of await readdir(BUNDLED_MODEL_PATH)) {
    if (f !== 'manifest.json' && !omit.includes(f)) await symlink(join(BUNDLED_MODEL_PATH, f), join(out, f));
  }
  const manifest = JSON.parse(await readFile(join(BUNDLED_MODEL_PATH, 'manifest.json'), 'utf8'));
  change(manifest);
  await writeFile(join(out, 'manifest.json'), JSON.stringify(manifest));
  return out;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'e2llm-cli-'));
});

describe('e2llm ask', () => {
  it('answers with --json: answer, usage, timings and evidence', async () => {
    const r = await cli(['ask', SAMPLE, '--question', 'What may you do with copies?', '--max-new-tokens', '8', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(typeof out.answer).toBe('string');
    expect(out.usage).toMatchObject({ chars: 35149, softTokens: out.usage.chunks - out.usage.expandedChunks, expansionRequested: 4, generatedTokens: expect.any(Number) });
    expect(out.usage.expandedChunks).toBeGreaterThan(0);
    expect(out.evidence.filter((e: { expanded: boolean }) => e.expanded)).toHaveLength(out.usage.expandedChunks);
    expect(out.evidence[0]).toMatchObject({ chunkIndex: expect.any(Number), charStart: expect.any(Number), text: expect.any(String) });
    expect(out.usage.chunks).toBeGreaterThan(60);
    expect(out.usage.encoderTokens).toBeGreaterThan(out.usage.chunks);
    expect(out.usage.promptTokens).toBeGreaterThan(0);
    expect(out.usage.generatedTokens).toBeLessThanOrEqual(8);
    for (const k of ['chunkMs', 'encodeMs', 'adapterMs', 'scoringMs', 'expandMs', 'prefillMs', 'decodeMs', 'totalMs']) expect(out.timings[k]).toBeGreaterThanOrEqual(0);
  });

  it('takes --expand, and refuses a bad one with INPUT_INVALID', async () => {
    const off = JSON.parse((await cli(['ask', SAMPLE, '-q', 'Who may convey copies?', '--max-new-tokens', '2', '--expand', '0', '--json'])).stdout);
    expect(off.usage).toMatchObject({ expandedChunks: 0, softTokens: off.usage.chunks });
    for (const bad of ['-1', '2.5', '17', 'x']) {
      const r = await cli(['ask', SAMPLE, '-q', 'Who?', '--expand', bad, '--json']);
      expect(r.code).toBe(2);
      expect(JSON.parse(r.stdout).error.code).toBe('INPUT_INVALID');
    }
  });

  it('is reproducible with a seed when sampling', async () => {
    const args = ['ask', SAMPLE, '-q', 'Who may convey copies?', '--temperature', '0.9', '--top-p', '0.9', '--top-k', '50', '--seed', '7', '--max-new-tokens', '12', '--json'];
    const [a, b] = [await cli(args), await cli(args)];
    expect(JSON.parse(a.stdout).answer).toBe(JSON.parse(b.stdout).answer);
  });

  it('suppresses end-of-sequence until --min-new-tokens', async () => {
    const r = await cli(['ask', SAMPLE, '-q', 'What may you do?', '--min-new-tokens', '12', '--max-new-tokens', '12', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ finishReason: 'length', usage: { generatedTokens: 12 } });
  });

  it('runs the summarize and reconstruct tasks', async () => {
    for (const task of ['summarize', 'reconstruct']) {
      const r = await cli(['ask', SAMPLE, '--task', task, '--max-new-tokens', '4', '--json']);
      expect(r.code, r.stderr).toBe(0);
    }
  });
});

describe('e2llm ask: bad input gets a stable code and a non-zero exit, never a stack trace', () => {
  const cases: [string, () => Promise<string[]>, string, number, Record<string, string>?][] = [
    ['empty file', async () => ['ask', await file('empty.txt', ''), '-q', 'x'], 'INPUT_EMPTY', 2],
    ['whitespace-only file', async () => ['ask', await file('ws.txt', ' \n\t \r\n '), '-q', 'x'], 'INPUT_EMPTY', 2],
    ['invalid UTF-8', async () => ['ask', await file('bad.txt', new Uint8Array([0x41, 0xff, 0xfe, 0x42])), '-q', 'x'], 'INPUT_INVALID_UTF8', 2],
    ['a binary file', async () => ['ask', await file('img.png', new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13])), '-q', 'x'], 'INPUT_NOT_TEXT', 2],
    ['a question over the limit', async () => ['ask', SAMPLE, '-q', 'why '.repeat(2000)], 'QUESTION_TOO_LONG', 2],
    ['a question over a configured limit', async () => ['ask', SAMPLE, '-q', 'a longer question'], 'QUESTION_TOO_LONG', 2, { MAX_QUESTION_CHARS: '5' }],
    ['a document over the limit', async () => ['ask', SAMPLE, '-q', 'x'], 'INPUT_TOO_LARGE', 2, { MAX_DOCUMENT_CHARS: '1000' }],
    ['a missing file', async () => ['ask', join(dir, 'nope.txt'), '-q', 'x'], 'FILE_NOT_FOUND', 2],
    ['a folder as the file', async () => ['ask', dir, '-q', 'x'], 'FILE_NOT_FOUND', 2],
    ['no question for qa', async () => ['ask', SAMPLE], 'INPUT_INVALID', 2],
    ['an unknown flag', async () => ['ask', SAMPLE, '-q', 'x', '--frobnicate'], 'INPUT_INVALID', 2],
    ['an unknown task', async () => ['ask', SAMPLE, '--task', 'poem'], 'INPUT_INVALID', 2],
    ['a non-numeric number', async () => ['ask', SAMPLE, '-q', 'x', '--max-new-tokens', 'lots'], 'INPUT_INVALID', 2],
    ['a negative temperature', async () => ['ask', SAMPLE, '-q', 'x', '--temperature', '-1'], 'INPUT_INVALID', 2],
    ['too many new tokens', async () => ['ask', SAMPLE, '-q', 'x', '--max-new-tokens', '100000'], 'INPUT_INVALID', 2],
    ['an unknown command', async () => ['frobnicate'], 'INPUT_INVALID', 2],
    ['a bad config value', async () => ['ask', SAMPLE, '-q', 'x'], 'CONFIG_INVALID', 2, { ENCODER_MAX_BATCH_TOKENS: 'many' }],
    ['a model folder that does not exist', async () => ['ask', SAMPLE, '-q', 'x', '--model', join(dir, 'no-model')], 'MODEL_NOT_FOUND', 3],
    ['a model folder missing a file', async () => ['ask', SAMPLE, '-q', 'x', '--model', await variantPackage(() => {}, ['adapter.onnx'])], 'MODEL_INVALID', 3],
    ['an invalid manifest', async () => ['ask', SAMPLE, '-q', 'x', '--model', await variantPackage((m) => delete m.decoder.window)], 'MODEL_INVALID', 3],
    ['ONNX inputs that do not match the manifest (layers)', async () => ['ask', SAMPLE, '-q', 'x', '--model', await variantPackage((m) => (m.decoder.layers = 3))], 'MODEL_MISMATCH', 3],
    ['ONNX outputs that do not match the manifest (width)', async () => ['ask', SAMPLE, '-q', 'x', '--model', await variantPackage((m) => { m.encoder.width = 64; m.adapter.inputWidth = 64; })], 'MODEL_MISMATCH', 3],
    ['graphs swapped in the manifest', async () => ['ask', SAMPLE, '-q', 'x', '--model', await variantPackage((m) => (m.encoder.onnx = 'adapter.onnx'))], 'MODEL_MISMATCH', 3],
    ['a document over the decoder window', async () => ['ask', SAMPLE, '-q', 'x', '--model', await variantPackage((m) => (m.decoder.window = 64))], 'CONTEXT_TOO_LONG', 2],
  ];
  for (const [name, args, code, exit, env] of cases) {
    it(name, async () => {
      const r = await cli(await args(), env);
      expect(r.stderr).toContain(`error ${code}:`);
      expect(r.code).toBe(exit);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
    });
  }

  it('prints the error as JSON with --json', async () => {
    const r = await cli(['ask', await file('empty2.txt', ''), '-q', 'x', '--json']);
    expect(JSON.parse(r.stdout)).toEqual({ error: { code: 'INPUT_EMPTY', message: expect.any(String) } });
    expect(r.code).toBe(2);
  });

  it('the installed bin exits non-zero with one error line', async () => {
    const bin = fileURLToPath(new URL('../bin/e2llm.js', import.meta.url));
    const err = await promisify(execFile)(process.execPath, [bin, 'ask', join(dir, 'missing.txt'), '-q', 'x']).catch((e) => e);
    expect(err.code).toBe(2);
    expect(err.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^e2llm: error FILE_NOT_FOUND: /)]);
  });
});
