import { createHash, randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '@lib/blob-store/testing';
import { JobStore, newId, Pipeline } from '@lib/job-store';
import { queuedJob, testRedis } from '@lib/job-store/testing';
import { loadConfig, resultKey, softPromptKey, sourceKey, type DocumentRecord, type JobRecord } from '@lib/shared';
import { LifecycleService } from './lifecycle.service.js';

/**
 * Deletion and retention without HTTP, against the in-memory blob store and the real Redis: a job is deleted when its
 * retention ends (a store with one second of it), a blob store that fails mid-delete leaves pending deletions the next
 * sweep finishes, a soft prompt referenced again meanwhile is kept, and a document with a job still running waits.
 */
const { redis, prefix, cleanup } = testRedis();
const config = loadConfig({}, { redisPrefix: prefix, retentionSeconds: 60, retentionSweepSeconds: 3600 });
const store = new JobStore(redis, prefix, 600, () => undefined, 1);
const pipeline = new Pipeline(redis, prefix, store);
const blobs = new MemoryBlobStore();
const lifecycle = new LifecycleService(config, blobs, store, pipeline, pino({ level: 'silent' }));
const sp = (tenant: string, n: number) => softPromptKey(tenant, 'enc1', createHash('sha256').update(`${tenant}/${n}`).digest('hex'));

afterAll(async () => {
  await pipeline.close();
  await cleanup();
});

function job(tenant: string, documentId: string | null = null): JobRecord {
  const record = queuedJob({ tenant, documentId });
  return { ...record, sourceKey: sourceKey(documentId ?? record.id) };
}

/** A job as the pipeline leaves it: record, source, soft prompts referenced and written, result. */
async function finishedJob(tenant: string, prompts: string[]): Promise<JobRecord> {
  const j = job(tenant);
  await store.createJob(j);
  await blobs.put(j.sourceKey, 'text');
  expect(await store.addRefs({ kind: 'job', id: j.id }, tenant, prompts)).toBe(true);
  for (const k of prompts) await blobs.put(k, 'vector');
  await blobs.put(resultKey(j.id), '{}');
  await store.transition(j.id, 'failed', { error: { code: 'INTERNAL', message: 'x' } });
  return j;
}

describe('LifecycleService', () => {
  it('deletes a finished job, its blobs and its unshared soft prompts once its retention (1 s here) has ended', async () => {
    const tenant = `t-${randomUUID()}`;
    const j = await finishedJob(tenant, [sp(tenant, 1), sp(tenant, 2)]);
    const other = await finishedJob(tenant, [sp(tenant, 2)]);
    await lifecycle.sweep();
    expect(await store.getJob(j.id)).not.toBeNull(); // not due yet
    await new Promise((r) => setTimeout(r, 1100));
    await lifecycle.sweep();
    expect(await store.getJob(j.id)).toBeNull();
    expect(await store.getJob(other.id)).toBeNull(); // due too
    expect(blobs.keys().filter((k) => k.includes(tenant) || k.includes(j.id) || k.includes(other.id))).toEqual([]);
  });

  it('leaves the blobs a failing store could not delete pending, and the next sweep deletes them', async () => {
    const tenant = `t-${randomUUID()}`;
    const [shared, own] = [sp(tenant, 3), sp(tenant, 4)];
    const keep = await finishedJob(tenant, [shared]);
    const j = await finishedJob(tenant, [shared, own]);
    blobs.failNext(4, ['delete']); // each of the job's own blobs (source, result, chunk ids) and its soft prompt
    await lifecycle.deleteJob(tenant, j.id); // the answer does not wait for the store
    expect(await store.getJob(j.id)).toBeNull();
    expect(blobs.keys()).toEqual(expect.arrayContaining([own, sourceKey(j.id), resultKey(j.id)]));
    expect(await store.pendingBlobDeletions(1000)).toEqual(expect.arrayContaining([own, sourceKey(j.id), resultKey(j.id)]));
    await lifecycle.sweep();
    expect(blobs.keys()).not.toContain(own);
    expect(blobs.keys()).not.toContain(sourceKey(j.id));
    expect(blobs.keys()).not.toContain(resultKey(j.id));
    expect(blobs.keys()).toContain(shared); // the other job still uses it
    expect(await store.pendingBlobDeletions(1000)).not.toContain(own);
    await lifecycle.deleteJob(tenant, keep.id);
    expect(blobs.keys()).not.toContain(shared);
  });

  it('keeps a pending soft prompt that a new job references before the sweep gets to it', async () => {
    const tenant = `t-${randomUUID()}`;
    const k = sp(tenant, 5);
    const j = await finishedJob(tenant, [k]);
    blobs.failNext(10, ['delete']);
    await lifecycle.deleteJob(tenant, j.id);
    blobs.failNext(0);
    const again = job(tenant);
    await store.createJob(again);
    await store.addRefs({ kind: 'job', id: again.id }, tenant, [k]);
    await lifecycle.sweep();
    expect(blobs.keys()).toContain(k);
    expect(await store.pendingBlobDeletions(1000)).not.toContain(k);
  });

  it('answers NOT_FOUND for another tenant, and cancels a job that has not ended before deleting it', async () => {
    const tenant = `t-${randomUUID()}`;
    const j = job(tenant);
    await store.createJob(j);
    await expect(lifecycle.deleteJob('someone-else', j.id)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(lifecycle.deleteJob(tenant, 'job_../x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const events = store.eventsKey(j.id);
    await lifecycle.deleteJob(tenant, j.id);
    expect(await store.getJob(j.id)).toBeNull();
    expect(await redis.exists(events)).toBe(0);
    expect(await redis.sismember(store.activeKey(tenant), j.id)).toBe(0); // no longer counted against the tenant's cap
  });

  it('keeps a document past its retention while a job on it runs, then deletes it with its jobs', async () => {
    const tenant = `t-${randomUUID()}`;
    const now = new Date().toISOString();
    const doc: DocumentRecord = { id: newId('doc'), tenant, status: 'encoding', sourceKey: '', chars: 4, chunks: 1, metadata: {}, createdAt: now, readyAt: null, expiresAt: now, error: null };
    doc.sourceKey = sourceKey(doc.id);
    await store.createDocument(doc);
    await blobs.put(doc.sourceKey, 'text');
    await store.setDocumentStatus(doc.id, 'ready');
    const running = job(tenant, doc.id);
    await store.createJob(running);
    await new Promise((r) => setTimeout(r, 1100));
    await lifecycle.sweep();
    expect(await store.getDocument(doc.id)).not.toBeNull();
    await store.transition(running.id, 'succeeded');
    await store.postponeDeletion(doc.id, Date.now() - 1);
    await store.postponeDeletion(running.id, Date.now() + 60_000);
    await lifecycle.sweep();
    expect(await store.getDocument(doc.id)).toBeNull();
    expect(await store.getJob(running.id)).toBeNull(); // asked on the document: deleted with it
    expect(blobs.keys()).not.toContain(doc.sourceKey);
  });
});
