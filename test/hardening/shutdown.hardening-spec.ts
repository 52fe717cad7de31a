import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { JobStore } from '@lib/job-store';
import { startServe, type ServeProcess } from './serve-process.js';

/**
 * `npm start` (`e2llm serve`: API and both workers in one process) as a user runs it, stopped with SIGTERM while a
 * long generation is in hand: the process must finish that job, store its result, and only then exit 0.
 */
let serve: ServeProcess | undefined;

afterAll(async () => {
  await serve?.cleanup();
});

describe('SIGTERM under e2llm serve', () => {
  it('finishes the job in hand, stores its result, then exits 0', async () => {
    serve = await startServe();
    const { url, lines, exited } = serve;
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
    serve.proc.kill('SIGTERM');
    const { code, at } = await exited;
    expect(code, lines.join('\n')).toBe(0);
    // The job ended in this process, before it exited: succeeded with its 1,024 tokens, not left to a restart.
    const redis = new Redis('redis://127.0.0.1:6379');
    const record = await new JobStore(redis, serve.prefix, 600).getJob(id);
    redis.disconnect();
    expect(record?.status).toBe('succeeded');
    expect(record!.result!.usage.generatedTokens).toBe(1024);
    expect(Date.parse(record!.finishedAt!)).toBeGreaterThanOrEqual(killedAt);
    expect(Date.parse(record!.finishedAt!)).toBeLessThanOrEqual(at);
    expect(lines.some((l) => l.includes('drained: every job in hand finished'))).toBe(true);
  }, 180_000);
});
