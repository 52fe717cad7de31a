import { afterAll, describe, expect, it } from 'vitest';
import { QueueName, decodeJobId, type DocumentRecord, type JobRecord, type JobResult } from '@lib/shared';
import { queuedJob, testRedis } from '../testing/index.js';
import { newBatchId } from '../records/batch-store.js';
import { JobStore, newId } from '../records/job-store.js';
import { Pipeline } from './pipeline.js';

/** Batch bookkeeping and jobs held for a document, on the machine's real Redis and real BullMQ queues (no workers). */
const { redis, prefix, cleanup } = testRedis();
const store = new JobStore(redis, prefix, 600);
const pipeline = new Pipeline(redis, prefix, store);

afterAll(async () => {
  await pipeline.close();
  await cleanup();
});

function job(documentId: string | null = null): JobRecord {
  return queuedJob({ documentId });
}

const result: JobResult = {
  text: 'an answer',
  finishReason: 'eos',
  usage: { chars: 10, chunks: 1, encoderTokens: 3, softTokens: 1, promptTokens: 4, generatedTokens: 2, expansionRequested: 0, expandedChunks: 0, expandedTokens: 0 },
  timings: { chunkMs: 0, encodeMs: 1, adapterMs: 1, scoringMs: 1, expandMs: 1, prefillMs: 1, decodeMs: 1, totalMs: 9, queueMs: 0 },
  evidence: [],
};

/** A batch over `n` jobs (created unless `missing` names their index), with a webhook. */
async function batch(n: number, missing: number[] = []): Promise<{ id: string; jobs: JobRecord[] }> {
  const id = newBatchId();
  const jobs = Array.from({ length: n }, () => job('doc_x'));
  await pipeline.batches.create({ id, tenant: 'tenant-a', documentId: 'doc_x', webhook: { url: 'https://hooks.example/b' }, metadata: {} }, jobs.map((j, i) => ({ customId: `c${i}`, jobId: j.id })));
  for (const [i, j] of jobs.entries()) if (!missing.includes(i)) await store.createJob(j);
  return { id, jobs };
}

const lines = async (id: string) => (await pipeline.batches.results(id)).map((l) => JSON.parse(l));
const webhook = (id: string, status: string) => pipeline.queues[QueueName.Webhook].getJob(`msg_${id}_${status}`);

describe('batches', () => {
  it('counts each item job once as it ends, with its result line, and queues one webhook when the last ends', async () => {
    const { id, jobs } = await batch(2);
    expect(await pipeline.finishJob(jobs[1]!.id, 'succeeded', { result })).toBe(true);
    // A second report of the same end (a retry, a read that refreshes) changes nothing.
    await pipeline.endBatchItem(jobs[1]!.id, { status: 'succeeded', result, error: null });
    await pipeline.refreshBatch(id);
    expect((await pipeline.batches.get(id))!).toMatchObject({ status: 'in_progress', ended: { succeeded: 1, failed: 0 }, finishedAt: null });
    expect(await lines(id)).toEqual([{ custom_id: 'c1', index: 1, status: 'succeeded', jobId: jobs[1]!.id, result, error: null }]);
    expect(await webhook(id, 'completed')).toBeUndefined();

    await pipeline.finishJob(jobs[0]!.id, 'failed', { error: { code: 'INFERENCE_FAILED', message: 'boom' } });
    const done = (await pipeline.batches.get(id))!;
    expect(done).toMatchObject({ status: 'completed', ended: { succeeded: 1, failed: 1, cancelled: 0, expired: 0 } });
    expect(done.finishedAt).not.toBeNull();
    expect((await lines(id))[1]).toEqual({ custom_id: 'c0', index: 0, status: 'failed', jobId: jobs[0]!.id, result: null, error: { code: 'INFERENCE_FAILED', message: 'boom' } });
    expect((await webhook(id, 'completed'))?.data).toMatchObject({ batchId: id, tenant: 'tenant-a', eventId: `msg_${id}_completed` });
    // A late duplicate end adds no line and no second webhook.
    await pipeline.endBatchItem(jobs[0]!.id, { status: 'failed', result: null, error: { code: 'INFERENCE_FAILED', message: 'boom' } });
    expect(await lines(id)).toHaveLength(2);
    expect(await pipeline.queues[QueueName.Webhook].getJobCountByTypes('waiting', 'delayed', 'completed', 'failed')).toBe(1);
  });

  it('a cancel ends the batch cancelled once its items in flight have ended; ended items keep their lines', async () => {
    const { id, jobs } = await batch(3);
    await pipeline.finishJob(jobs[0]!.id, 'succeeded', { result });
    expect(await pipeline.batches.requestCancel(id)).toBe('in_progress');
    expect((await pipeline.batches.get(id))!.status).toBe('cancelling');
    await pipeline.cancel(jobs[1]!.id);
    // A job already in its last step ends as it would have.
    await pipeline.finishJob(jobs[2]!.id, 'succeeded', { result });
    const done = (await pipeline.batches.get(id))!;
    expect(done).toMatchObject({ status: 'cancelled', ended: { succeeded: 2, cancelled: 1 } });
    expect(done.cancelRequestedAt).not.toBeNull();
    expect((await lines(id)).map((l) => [l.custom_id, l.status])).toEqual([
      ['c0', 'succeeded'],
      ['c1', 'cancelled'],
      ['c2', 'succeeded'],
    ]);
    expect(await webhook(id, 'cancelled')).toBeDefined();
    expect(await pipeline.batches.requestCancel(id)).toBe('cancelled');
  });

  it('a read counts what a lost report missed: a job ended without its count, a job whose record is gone (expired)', async () => {
    const { id, jobs } = await batch(3, [2]);
    // Ended by the store alone (a process that stopped before counting it).
    await store.transition(jobs[0]!.id, 'succeeded', { result });
    expect((await pipeline.batches.get(id))!.ended.succeeded).toBe(0);
    await pipeline.refreshBatch(id);
    expect((await pipeline.batches.get(id))!).toMatchObject({ status: 'in_progress', ended: { succeeded: 1, expired: 1 } });
    expect((await lines(id)).find((l) => l.custom_id === 'c2')).toMatchObject({ status: 'expired', result: null, error: { code: 'NOT_FOUND' } });
    // A job still running is left alone.
    await store.transition(jobs[1]!.id, 'encoding');
    await pipeline.refreshBatch(id);
    expect((await pipeline.batches.get(id))!.status).toBe('in_progress');
  });
});

describe('batches deleted with their document', () => {
  it('removes the record, the item mapping and the result lines', async () => {
    const { id, jobs } = await batch(2);
    const other = await batch(1);
    await pipeline.finishJob(jobs[0]!.id, 'succeeded', { result });
    expect(await pipeline.batches.deleteForDocument('doc_x')).toEqual(expect.arrayContaining([id, other.id]));
    expect(await pipeline.batches.get(id)).toBeNull();
    expect(await pipeline.batches.results(id)).toEqual([]);
    expect(await pipeline.batches.itemOf(jobs[1]!.id)).toBeNull();
    // Nothing left but the tombstone that frees an Idempotency-Key bound to the batch.
    expect(await redis.keys(`${prefix}:*${id}*`)).toEqual([`${prefix}:deleted:${id}`]);
    expect((await pipeline.batches.list('tenant-a', 100)).data.map((b) => b.id)).not.toContain(id);
    // The job that ends afterwards belongs to no batch any more.
    await pipeline.finishJob(jobs[1]!.id, 'succeeded', { result });
    expect(await redis.keys(`${prefix}:*${id}*`)).toEqual([`${prefix}:deleted:${id}`]);
  });
});

describe('jobs held for a document that is encoding', () => {
  async function document(status: DocumentRecord['status']): Promise<DocumentRecord> {
    const now = new Date().toISOString();
    const doc: DocumentRecord = { id: newId('doc'), tenant: 'tenant-a', status, sourceKey: 'sources/d', chars: 10, chunks: 1, metadata: {}, createdAt: now, readyAt: null, expiresAt: now, error: null };
    await store.createDocument(doc);
    return doc;
  }
  const batches = [[{ i: 0, start: 0, end: 10, tokens: 4 }]];

  it('are queued when the document is ready, once, and not before', async () => {
    const doc = await document('encoding');
    const [a, b] = [job(doc.id), job(doc.id)];
    for (const j of [a, b]) await store.createJob(j);
    expect(await pipeline.holdForDocument(doc.id, a.id, batches)).toBe(true);
    expect(await pipeline.holdForDocument(doc.id, b.id, batches, '00-0123456789abcdef0123456789abcdef-0123456789abcdef-01')).toBe(true);
    await pipeline.cancel(b.id); // cancelled while it waited: never queued
    expect(await pipeline.releaseHeld(doc.id)).toBe(0); // still encoding
    expect(await pipeline.queues[QueueName.Decode].getJob(decodeJobId(a.id))).toBeUndefined();
    await pipeline.documentEnded(doc.id, 'ready');
    expect((await pipeline.queues[QueueName.Decode].getJob(decodeJobId(a.id)))?.data).toMatchObject({ jobId: a.id });
    expect(await pipeline.queues[QueueName.Decode].getJob(decodeJobId(b.id))).toBeUndefined();
    expect(await pipeline.releaseHeld(doc.id)).toBe(0); // taken once
    // Once ready, a job is not held.
    expect(await pipeline.holdForDocument(doc.id, newId('job'), batches)).toBe(false);
  });

  it('fail with the document when it fails to encode', async () => {
    const doc = await document('encoding');
    const a = job(doc.id);
    await store.createJob(a);
    expect(await pipeline.holdForDocument(doc.id, a.id, batches)).toBe(true);
    await pipeline.documentEnded(doc.id, 'failed', { code: 'INFERENCE_FAILED', message: 'encoder crashed' });
    expect(await store.getJob(a.id)).toMatchObject({ status: 'failed', error: { code: 'INFERENCE_FAILED', message: `document ${doc.id} failed to encode: encoder crashed` } });
  });
});
