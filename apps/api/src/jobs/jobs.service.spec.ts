import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { MemoryBlobStore } from '@lib/blob-store/testing';
import { ExtractionPool } from '@lib/extract';
import { JobStore, Pipeline } from '@lib/job-store';
import { testRedis } from '@lib/job-store/testing';
import { DocumentPlanner } from '@lib/model-runtime';
import { PlanningPool } from '@lib/model-runtime/planning';
import { chunkIdsKey, decodeChunkIds, decodeJobId, loadConfig, ModelManifest, QueueName } from '@lib/shared';
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
const MODEL = new URL('../../../../models/e2llm-tiny/', import.meta.url);
const manifest = ModelManifest.parse(JSON.parse(readFileSync(new URL('manifest.json', MODEL), 'utf8')));
const planner = new PlanningPool(MODEL.pathname, { threads: 1 });
const extractor = new ExtractionPool({ threads: 1, memoryMb: 128, maxQueue: 1 });
const service = new JobsService(config, blobs, store, pipeline, manifest, planner, extractor, pino({ level: 'silent' }));
const TEXT = 'The keeper of the northern light was Ada. '.repeat(40);
const body = (fields: Record<string, unknown>) => ({ fields, file: null });

afterAll(async () => {
  await planner.close();
  await extractor.close();
  await pipeline.close();
  await cleanup();
});

describe('JobsService', () => {
  it('stores the source and the record, and puts one flow on the queue', async () => {
    const { job, replayed } = await service.createJob('t1', body({ text: TEXT, task: { type: 'qa', question: ' Who kept it? ' }, generation: { expand: { chunks: 2 } } }), undefined);
    expect(replayed).toBe(false);
    expect(job).toMatchObject({ status: 'queued', tenant: 't1', task: { type: 'qa', question: 'Who kept it?' }, chars: TEXT.length });
    expect(job.generation.expand).toEqual({ chunks: 2, minScoreRatio: 0.5 });
    // The chunks the flow carries are the planner's, the same `e2llm ask` cuts.
    const chunks = (await DocumentPlanner.load(MODEL.pathname)).chunk(TEXT);
    expect(job.progress.chunksTotal).toBe(chunks.length);
    const children = (await pipeline.queues[QueueName.Encode].getJobs(['waiting', 'prioritized', 'delayed'])).filter((j) => j.data.owner.id === job.id);
    const refs = children.flatMap((j) => j.data.chunks as { i: number; start: number; end: number; tokens: number }[]).sort((a, b) => a.i - b.i);
    expect(refs).toEqual(chunks.map((c) => ({ i: c.index, start: c.start, end: c.end, tokens: c.ids.length })));
    expect((await blobs.get(job.sourceKey)).toString('utf8')).toBe(TEXT);
    // The encoder ids it measured, stored for the encoder workers, are the planner's.
    const measured = decodeChunkIds(await blobs.get(chunkIdsKey(job.id)))!;
    expect(measured.tokenizer).toBe((await DocumentPlanner.load(MODEL.pathname)).tokenizerId);
    expect(chunks.map((c) => [...measured.chunk(c.index)!])).toEqual(chunks.map((c) => c.ids));
    expect(children.every((j) => j.data.idsKey === chunkIdsKey(job.id))).toBe(true);
    expect(await store.getJob(job.id)).toMatchObject({ id: job.id, status: 'queued' });
    expect(await pipeline.queues[QueueName.Decode].getJobState(decodeJobId(job.id))).toBe('waiting-children');
  });

  it('refuses at submission, by tokens, what the window cannot hold: a text that tokenizes long, a long question', async () => {
    // 150k supplementary-plane characters: 293 chunks by characters, many times that by the encoder's tokens.
    const extB = String.fromCodePoint(0x20000).repeat(150_000);
    const t0 = performance.now();
    await expect(service.createJob('t1', body({ text: extB, task: { type: 'summarize' } }), undefined)).rejects.toMatchObject({ code: 'CONTEXT_TOO_LONG' });
    await expect(service.createDocument('t1', body({ text: extB }))).rejects.toMatchObject({ code: 'CONTEXT_TOO_LONG' });
    expect(performance.now() - t0).toBeLessThan(20_000);
    // 2,000 emoji are within the question's character limit and far over the window in tokens.
    const question = '\u{1F9E9}'.repeat(2000);
    await expect(service.createJob('t1', body({ text: TEXT, task: { type: 'qa', question } }), undefined)).rejects.toMatchObject({ code: 'CONTEXT_TOO_LONG' });
    // More characters than any cut of the window could hold: refused before it is cut at all.
    const t1 = performance.now();
    await expect(service.createJob('t1', body({ text: 'a'.repeat(3_000_000), task: { type: 'summarize' } }), undefined)).rejects.toMatchObject({ code: 'CONTEXT_TOO_LONG' });
    expect(performance.now() - t1).toBeLessThan(1000);
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

  it('cuts a text once per tenant: the same text again takes its chunks from the cut cache, its prompt still measured', async () => {
    const text = `${TEXT} A text of its own: ${randomUUID()}.`;
    const plan = vi.spyOn(planner, 'plan');
    const refsOf = async (id: string) =>
      (await pipeline.queues[QueueName.Encode].getJobs(['waiting', 'prioritized', 'delayed'])).filter((j) => j.data.owner.id === id).flatMap((j) => j.data.chunks as { i: number }[]).sort((a, b) => a.i - b.i);
    const first = await service.createJob('t1', body({ text, task: { type: 'summarize' } }), undefined);
    expect(plan).toHaveBeenCalledTimes(1);
    const again = await service.createJob('t1', body({ text, task: { type: 'qa', question: 'Who kept it?' } }), undefined);
    expect(plan).toHaveBeenCalledTimes(1);
    expect(await refsOf(again.job.id)).toEqual(await refsOf(first.job.id));
    // The question is measured whatever the cache holds.
    await expect(service.createJob('t1', body({ text, task: { type: 'qa', question: '\u{1F9E9}'.repeat(2000) } }), undefined)).rejects.toMatchObject({ code: 'CONTEXT_TOO_LONG' });
    // Another tenant's submission of the same text is cut again: the cache is per tenant.
    await service.createJob('t2', body({ text, task: { type: 'summarize' } }), undefined);
    expect(plan).toHaveBeenCalledTimes(2);
    plan.mockRestore();
  });
});
