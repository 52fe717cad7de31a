import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '@lib/blob-store/testing';
import { JobStore, Pipeline } from '@lib/job-store';
import { testRedis } from '@lib/job-store/testing';
import { chunkText, decodeJobId, loadConfig, ModelManifest, QueueName } from '@lib/shared';
import { JobsService } from './jobs.service.js';

/**
 * The API's job service without HTTP: what it stores for a job (the source, the record, one flow), how it answers a
 * repeated Idempotency-Key, another tenant and a cancel, against the in-memory blob store and the real Redis.
 */
const { redis, prefix, cleanup } = testRedis();
const config = loadConfig({}, { redisPrefix: prefix });
const store = new JobStore(redis, prefix, 600);
const pipeline = new Pipeline(redis, prefix, store);
const blobs = new MemoryBlobStore();
const manifest = ModelManifest.parse(JSON.parse(readFileSync(new URL('../../../../models/e2llm-tiny/manifest.json', import.meta.url), 'utf8')));
const service = new JobsService(config, blobs, store, pipeline, manifest, pino({ level: 'silent' }));
const TEXT = 'The keeper of the northern light was Ada. '.repeat(40);
const body = (fields: Record<string, unknown>) => ({ fields, file: null });

afterAll(async () => {
  await pipeline.close();
  await cleanup();
});

describe('JobsService', () => {
  it('stores the source and the record, and puts one flow on the queue', async () => {
    const { job, replayed } = await service.createJob('t1', body({ text: TEXT, task: { type: 'qa', question: ' Who kept it? ' }, generation: { expand: { chunks: 2 } } }), undefined);
    expect(replayed).toBe(false);
    expect(job).toMatchObject({ status: 'queued', tenant: 't1', task: { type: 'qa', question: 'Who kept it?' }, chars: TEXT.length });
    expect(job.generation.expand).toEqual({ chunks: 2, minScoreRatio: 0.5 });
    const { chunkChars, overlapChars } = manifest.prompt.chunking;
    expect(job.progress.chunksTotal).toBe(chunkText(TEXT, { chunkChars, overlapChars }).length);
    expect((await blobs.get(job.sourceKey)).toString('utf8')).toBe(TEXT);
    expect(await store.getJob(job.id)).toMatchObject({ id: job.id, status: 'queued' });
    expect(await pipeline.queues[QueueName.Decode].getJobState(decodeJobId(job.id))).toBe('waiting-children');
  });

  it('replays an Idempotency-Key with the same body and refuses it with another', async () => {
    const key = `key-${randomUUID()}`;
    const req = { text: TEXT, task: { type: 'summarize' } };
    const a = await service.createJob('t1', body(req), key);
    const b = await service.createJob('t1', body(req), key);
    expect(b).toMatchObject({ replayed: true, job: { id: a.job.id } });
    await expect(service.createJob('t1', body({ ...req, task: { type: 'reconstruct' } }), key)).rejects.toMatchObject({ code: 'CONFLICT' });
  });

  it("hides a job from another tenant, cancels once, and refuses bad options with INPUT_INVALID", async () => {
    const { job } = await service.createJob('t1', body({ text: TEXT, task: { type: 'summarize' } }), undefined);
    await expect(service.getJob('t2', job.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await service.cancel('t1', job.id)).status).toBe('cancelled');
    await expect(service.cancel('t1', job.id)).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(await pipeline.queues[QueueName.Decode].getJob(decodeJobId(job.id))).toBeUndefined();
    await expect(service.createJob('t1', body({ text: TEXT, task: { type: 'summarize' }, generation: { expand: { chunks: -1 } } }), undefined)).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    await expect(service.createJob('t1', body({ text: TEXT, task: { type: 'summarize' }, generation: { maxNewTokens: 5, minNewTokens: 9 } }), undefined)).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });
});
