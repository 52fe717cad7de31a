import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { JobStore } from '@lib/job-store';

/**
 * `npm start` (`e2llm serve`: API and both workers in one process) as a user runs it, stopped with SIGTERM while a
 * long generation is in hand: the process must finish that job, store its result, and only then exit 0.
 */
const BIN = new URL('../../apps/cli/bin/e2llm.js', import.meta.url).pathname;
const prefix = `e2llm-shutdown-${randomBytes(6).toString('hex')}`;
const dataDir = mkdtempSync(join(tmpdir(), 'e2llm-shutdown-'));
const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
let child: ChildProcess | undefined;

afterAll(async () => {
  child?.kill('SIGKILL');
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  rmSync(dataDir, { recursive: true, force: true });
});

function serve(): Promise<{ url: string; lines: string[]; exited: Promise<{ code: number | null; at: number }> }> {
  const proc = spawn(process.execPath, [BIN, 'serve'], {
    env: { ...process.env, PORT: '0', REDIS_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'info', BLOB_STORE: 'local' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  const lines: string[] = [];
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => proc.on('exit', (code) => resolve({ code, at: Date.now() })));
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      lines.push(line);
      const m = /listening on (http:\/\/\S+)"/.exec(line);
      if (m) resolve({ url: m[1]!, lines, exited });
    });
    proc.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
    void exited.then(() => reject(new Error(`serve exited before listening:\n${lines.join('\n')}`)));
  });
}

describe('SIGTERM under e2llm serve', () => {
  it('finishes the job in hand, stores its result, then exits 0', async () => {
    const { url, lines, exited } = await serve();
    const text = Array.from({ length: 40 }, (_, i) => `Paragraph ${i} says the lamp was lit at ${i} o'clock.`).join(' ');
    const res = await fetch(`${url}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text, task: { type: 'summarize' }, generation: { maxNewTokens: 1024, minNewTokens: 1024, expand: { chunks: 0 } } }),
    });
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    // Wait until the decoder holds it, then stop the process.
    for (let i = 0; i < 600; i++) {
      const job = (await (await fetch(`${url}/v1/jobs/${id}`)).json()) as { status: string };
      if (job.status === 'decoding') break;
      if (job.status === 'succeeded' || job.status === 'failed') throw new Error(`the job ended before SIGTERM (${job.status}): make it longer`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const killedAt = Date.now();
    child!.kill('SIGTERM');
    const { code, at } = await exited;
    expect(code, lines.join('\n')).toBe(0);
    // The job ended in this process, before it exited: succeeded with its 1,024 tokens, not left to a restart.
    await redis.connect();
    const record = await new JobStore(redis, prefix, 600).getJob(id);
    expect(record?.status).toBe('succeeded');
    expect(record!.result!.usage.generatedTokens).toBe(1024);
    expect(Date.parse(record!.finishedAt!)).toBeGreaterThanOrEqual(killedAt);
    expect(Date.parse(record!.finishedAt!)).toBeLessThanOrEqual(at);
    expect(lines.some((l) => l.includes('drained: every job in hand finished'))).toBe(true);
  }, 180_000);
});
