import { describe, expect, it } from 'vitest';
import { jobEndRecorder, registry } from './metrics.js';

/** One sample of the registry's Prometheus text (0 when absent). */
async function value(name: string, labels: Record<string, string>): Promise<number> {
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^([a-z0-9_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('jobEndRecorder', () => {
  it('counts each end once by status, fails only failed jobs, and logs one line per job (failures at error, with the code)', async () => {
    const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
    const logger = {
      info: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'info', fields, msg }),
      error: (fields: Record<string, unknown>, msg: string) => lines.push({ level: 'error', fields, msg }),
    } as unknown as Parameters<typeof jobEndRecorder>[0];
    const before = {
      cancelled: await value('e2llm_jobs_finished_total', { status: 'cancelled' }),
      failed: await value('e2llm_jobs_finished_total', { status: 'failed' }),
      tooLong: await value('e2llm_job_failures_total', { code: 'CONTEXT_TOO_LONG' }),
      cancelledCode: await value('e2llm_job_failures_total', { code: 'JOB_CANCELLED' }),
      durations: await value('e2llm_job_duration_seconds_count', { status: 'cancelled' }),
    };
    const record = jobEndRecorder(logger);
    record({ jobId: 'job_a', status: 'cancelled', durationSeconds: 1.5, error: { code: 'JOB_CANCELLED', message: 'the job was cancelled' } });
    record({ jobId: 'job_b', status: 'failed', durationSeconds: 0.25, error: { code: 'CONTEXT_TOO_LONG', message: 'too long' } });

    expect((await value('e2llm_jobs_finished_total', { status: 'cancelled' })) - before.cancelled).toBe(1);
    expect((await value('e2llm_jobs_finished_total', { status: 'failed' })) - before.failed).toBe(1);
    expect((await value('e2llm_job_failures_total', { code: 'CONTEXT_TOO_LONG' })) - before.tooLong).toBe(1);
    expect((await value('e2llm_job_failures_total', { code: 'JOB_CANCELLED' })) - before.cancelledCode).toBe(0);
    expect((await value('e2llm_job_duration_seconds_count', { status: 'cancelled' })) - before.durations).toBe(1);
    expect(lines).toEqual([
      { level: 'info', fields: { jobId: 'job_a', status: 'cancelled', durationMs: 1500 }, msg: 'job ended' },
      { level: 'error', fields: { jobId: 'job_b', status: 'failed', durationMs: 250, code: 'CONTEXT_TOO_LONG', err: 'too long' }, msg: 'job failed' },
    ]);
  });
});
