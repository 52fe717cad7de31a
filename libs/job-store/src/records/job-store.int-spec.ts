import { createHash, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { softPromptKey, type DocumentRecord, type JobRecord, type JobResult } from '@lib/shared';
import { queuedJob, testRedis } from '../testing/index.js';
import type { JobEnd } from '../observability/metrics.js';
import { JobStore, newId, RETENTION_MARGIN_SECONDS } from './job-store.js';

/** The job store against the machine's real Redis, under a key prefix of its own. */
const { redis, prefix, cleanup } = testRedis();
const store = new JobStore(redis, prefix, 600);

function job(tenant = 'tenant-a'): JobRecord {
  return queuedJob({ tenant, progress: { chunksTotal: 3, chunksEncoded: 0, chunksCached: 0 } });
}

const result: JobResult = {
  text: 'an answer',
  finishReason: 'eos',
  usage: { chars: 10, chunks: 3, encoderTokens: 9, softTokens: 2, promptTokens: 4, generatedTokens: 2, expansionRequested: 1, expandedChunks: 1, expandedTokens: 5 },
  timings: { chunkMs: 0, encodeMs: 1, adapterMs: 1, scoringMs: 1, expandMs: 1, prefillMs: 1, decodeMs: 1, totalMs: 9, queueMs: 0 },
  evidence: [{ chunkIndex: 1, charStart: 3, charEnd: 6, score: 2, expanded: true, text: 'abc' }],
};

afterAll(cleanup);

describe('JobStore transitions (Lua)', () => {
  it('moves forward, stamps the times, keeps the result and evidence, and never leaves a terminal state', async () => {
    const j = job();
    await store.createJob(j);
    expect(await redis.sismember(store.activeKey(j.tenant), j.id)).toBe(1);
    expect(await store.transition(j.id, 'encoding')).toBe(true);
    expect(await store.transition(j.id, 'encoding')).toBe(false); // already there
    expect((await store.getJob(j.id))!.startedAt).not.toBeNull();
    expect(await store.transition(j.id, 'decoding')).toBe(true);
    expect(await store.transition(j.id, 'encoding')).toBe(false); // never backwards
    expect(await store.transition(j.id, 'succeeded', { result })).toBe(true);
    const done = (await store.getJob(j.id))!;
    expect(done).toMatchObject({ status: 'succeeded', result, error: null });
    expect(done.finishedAt).not.toBeNull();
    expect(await redis.sismember(store.activeKey(j.tenant), j.id)).toBe(0); // no longer counted as queued work
    expect(await store.transition(j.id, 'failed', { error: { code: 'INTERNAL', message: 'late' } })).toBe(false);
    expect(await store.transition(j.id, 'cancelled')).toBe(false);
    expect((await store.getJob(j.id))!.status).toBe('succeeded');
  });

  it('records a failure with its code, and refuses an unknown job', async () => {
    const j = job();
    await store.createJob(j);
    expect(await store.transition(j.id, 'failed', { error: { code: 'CONTEXT_TOO_LONG', message: 'too long' } })).toBe(true);
    expect((await store.getJob(j.id))!.error).toEqual({ code: 'CONTEXT_TOO_LONG', message: 'too long' });
    await expect(store.transition(newId('job'), 'encoding')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('counts progress and appends every event to the job\'s stream, with ids a reader resumes from', async () => {
    const j = job();
    await store.createJob(j);
    expect(await store.snapshot(j.id)).toMatchObject({ job: { id: j.id, status: 'queued' }, lastEventId: '0-0' });
    expect(await store.addProgress(j.id, 2, 0)).toEqual({ chunksTotal: 3, chunksEncoded: 2, chunksCached: 0 });
    const textId = await store.publish(j.id, { type: 'text', delta: ' a' });
    expect(await store.addProgress(j.id, 0, 1)).toEqual({ chunksTotal: 3, chunksEncoded: 2, chunksCached: 1 });
    await store.transition(j.id, 'cancelled');
    const all = await store.readEvents(j.id, '0-0', 0);
    expect(all.map((e) => e.event.type)).toEqual(['progress', 'text', 'progress', 'status']);
    expect(all[1]).toEqual({ id: textId, event: { type: 'text', delta: ' a' } });
    expect(all.at(-1)!.event).toEqual({ type: 'status', status: 'cancelled' });
    // Ids increase, and reading after one gives exactly the events that follow it.
    expect([...all.map((e) => e.id)].sort(compareIds)).toEqual(all.map((e) => e.id));
    expect(await store.readEvents(j.id, all[1]!.id, 0)).toEqual(all.slice(2));
    expect(await store.readEvents(j.id, all.at(-1)!.id, 0)).toEqual([]);
    // The snapshot's id is the last event's: a reader starting there misses none and repeats none.
    expect((await store.snapshot(j.id)).lastEventId).toBe(all.at(-1)!.id);
    expect(await redis.ttl(store.eventsKey(j.id))).toBeGreaterThan(590);
  });

  it('a blocking read wakes for the next event', async () => {
    const j = job();
    await store.createJob(j);
    const reader = redis.duplicate();
    const read = store.readEvents(j.id, '0-0', 5000, reader);
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    await store.transition(j.id, 'encoding');
    expect((await read).map((e) => e.event)).toEqual([{ type: 'status', status: 'encoding' }]);
    expect(Date.now() - t0).toBeLessThan(1000);
    reader.disconnect();
  });

  it('tells the observer once per job, from the transition that ended it, with its status, duration and error', async () => {
    const ends: JobEnd[] = [];
    const observed = new JobStore(redis, prefix, 600, (e) => ends.push(e));
    const a = job();
    const b = job();
    await observed.createJob(a);
    await observed.createJob(b);
    await observed.transition(a.id, 'encoding');
    await observed.transition(a.id, 'decoding');
    expect(ends).toEqual([]);
    // A cancel racing with late failures of its steps: one end, cancelled, whoever comes second.
    const raced = await Promise.all([
      observed.transition(a.id, 'cancelled', { error: { code: 'JOB_CANCELLED', message: 'the job was cancelled' } }),
      observed.transition(a.id, 'failed', { error: { code: 'JOB_CANCELLED', message: 'step saw the cancel' } }),
      observed.transition(a.id, 'failed', { error: { code: 'INTERNAL', message: 'child failed' } }),
    ]);
    expect(raced.filter(Boolean)).toHaveLength(1);
    await observed.transition(b.id, 'failed', { error: { code: 'CONTEXT_TOO_LONG', message: 'too long' } });
    await observed.transition(b.id, 'failed', { error: { code: 'INTERNAL', message: 'again' } });
    expect(ends).toHaveLength(2);
    expect(ends[0]).toMatchObject({ jobId: a.id, status: 'cancelled' });
    expect(ends[1]).toEqual({ jobId: b.id, status: 'failed', durationSeconds: expect.any(Number), error: { code: 'CONTEXT_TOO_LONG', message: 'too long' } });
    expect(ends[1]!.durationSeconds).toBeGreaterThanOrEqual(0);
    expect(ends[1]!.durationSeconds).toBeLessThan(60);
  });
});

/** Redis stream ids in stream order (`<ms>-<seq>`, numerically). */
function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1;
}

describe('JobStore idempotency keys', () => {
  it('binds a key to the first job, returns it for the same body, refuses another body, and frees it on release', async () => {
    const key = `k-${randomUUID()}`;
    expect(await store.claimIdempotencyKey('t', key, 'body-1', 'job_a')).toEqual({ jobId: 'job_a', created: true });
    expect(await store.claimIdempotencyKey('t', key, 'body-1', 'job_b')).toEqual({ jobId: 'job_a', created: false });
    await expect(store.claimIdempotencyKey('t', key, 'body-2', 'job_c')).rejects.toMatchObject({ code: 'CONFLICT' });
    // per tenant: another tenant's same key is its own
    expect(await store.claimIdempotencyKey('u', key, 'body-2', 'job_d')).toEqual({ jobId: 'job_d', created: true });
    await store.releaseIdempotencyKey('t', key);
    expect(await store.claimIdempotencyKey('t', key, 'body-2', 'job_e')).toEqual({ jobId: 'job_e', created: true });
  });

  it('gives one winner among concurrent claims', async () => {
    const key = `race-${randomUUID()}`;
    const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => store.claimIdempotencyKey('t', key, 'same', `job_${i}`)));
    expect(claims.filter((c) => c.created)).toHaveLength(1);
    expect(new Set(claims.map((c) => c.jobId)).size).toBe(1);
  });
});

describe('JobStore listing', () => {
  it("pages newest first per tenant, without another tenant's jobs", async () => {
    const tenant = `list-${randomUUID().slice(0, 8)}`;
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const j = job(tenant);
      ids.push(j.id);
      await store.createJob(j);
      await new Promise((r) => setTimeout(r, 2));
    }
    await store.createJob(job('someone-else'));
    const first = await store.listJobs(tenant, 3);
    expect(first.data.map((j) => j.id)).toEqual(ids.slice(2).reverse());
    const second = await store.listJobs(tenant, 3, first.nextCursor!);
    expect(second.data.map((j) => j.id)).toEqual(ids.slice(0, 2).reverse());
    expect(second.nextCursor).toBeNull();
  });
});

describe('JobStore data lifecycle: documents, soft-prompt references, deletion, retention', () => {
  const sp = (tenant: string, n: number) => softPromptKey(tenant, 'enc1', createHash('sha256').update(String(n)).digest('hex'));
  function doc(tenant = 'tenant-l'): DocumentRecord {
    const now = new Date().toISOString();
    return { id: newId('doc'), tenant, status: 'encoding', sourceKey: 'sources/d', chars: 5, chunks: 2, metadata: {}, createdAt: now, readyAt: null, expiresAt: now, error: null };
  }

  it('pages documents newest first per tenant', async () => {
    const tenant = `t-${randomUUID()}`;
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const d = { ...doc(tenant), id: newId('doc') };
      await store.createDocument(d);
      ids.push(d.id);
      await new Promise((r) => setTimeout(r, 2));
    }
    await store.createDocument(doc(`${tenant}-other`));
    const first = await store.listDocuments(tenant, 2);
    expect(first.data.map((d) => d.id)).toEqual(ids.slice(1).reverse());
    const second = await store.listDocuments(tenant, 2, first.nextCursor!);
    expect(second.data.map((d) => d.id)).toEqual([ids[0]]);
    expect(second.nextCursor).toBeNull();
  });

  it('counts a shared soft prompt once per owner and deletes it with the last owner only', async () => {
    const tenant = `t-${randomUUID()}`;
    const d = doc(tenant);
    await store.createDocument(d);
    const j = { ...job(tenant), documentId: d.id };
    await store.createJob(j);
    const [shared, own] = [sp(tenant, 1), sp(tenant, 2)];
    expect(await store.addRefs({ kind: 'document', id: d.id }, tenant, [shared])).toBe(true);
    expect(await store.addRefs({ kind: 'job', id: j.id }, tenant, [shared, own, own])).toBe(true);
    expect(await store.addRefs({ kind: 'job', id: j.id }, tenant, [shared, own])).toBe(true); // a retried step
    expect(await store.refCount(tenant, shared)).toBe(2);
    expect(await store.refCount(tenant, own)).toBe(1);
    expect(await store.jobsOfDocument(d.id)).toEqual([j.id]);

    const firstDelete = await store.deleteJobRecords(j, ['results/x.json']);
    expect(firstDelete.sort()).toEqual([own, 'results/x.json'].sort());
    expect(await store.getJob(j.id)).toBeNull();
    expect(await store.refCount(tenant, shared)).toBe(1);
    expect(await store.jobsOfDocument(d.id)).toEqual([]);
    expect((await store.listJobs(tenant, 10)).data).toEqual([]);
    expect(await redis.exists(store.eventsKey(j.id))).toBe(0);
    // Idempotent: nothing is released twice.
    expect(await store.deleteJobRecords(j, [])).toEqual([]);
    expect(await store.refCount(tenant, shared)).toBe(1);
    // An owner that is gone can reference nothing.
    expect(await store.addRefs({ kind: 'job', id: j.id }, tenant, [own])).toBe(false);
    expect(await store.refCount(tenant, own)).toBe(0);

    expect(await store.deleteDocumentRecords(d, ['sources/d'])).toEqual([shared, 'sources/d']);
    expect(await store.getDocument(d.id)).toBeNull();
    expect((await store.listDocuments(tenant, 10)).data).toEqual([]);
    const pending = await store.pendingBlobDeletions(1000);
    for (const k of [own, shared, 'results/x.json', 'sources/d']) expect(pending).toContain(k);
    await store.blobsDeleted([own, shared, 'results/x.json', 'sources/d']);
    expect(await store.pendingBlobDeletions(1000)).not.toContain(own);
  });

  it('frees an Idempotency-Key whose job was deleted: the next request with it makes a new job', async () => {
    const tenant = `t-${randomUUID()}`;
    const j = job(tenant);
    expect(await store.claimIdempotencyKey(tenant, 'key-1', 'fp', j.id)).toEqual({ jobId: j.id, created: true });
    await store.createJob(j);
    expect(await store.claimIdempotencyKey(tenant, 'key-1', 'fp', newId('job'))).toEqual({ jobId: j.id, created: false });
    await store.deleteJobRecords(j, []);
    const next = newId('job');
    expect(await store.claimIdempotencyKey(tenant, 'key-1', 'other body', next)).toEqual({ jobId: next, created: true });
    expect(await store.claimIdempotencyKey(tenant, 'key-1', 'other body', newId('job'))).toEqual({ jobId: next, created: false });
  });

  it('keeps a pending soft-prompt deletion that was referenced again, and collects what a deleted owner wrote', async () => {
    const tenant = `t-${randomUUID()}`;
    const [a, b] = [sp(tenant, 3), sp(tenant, 4)];
    const j = job(tenant);
    await store.createJob(j);
    await store.addRefs({ kind: 'job', id: j.id }, tenant, [a]);
    expect(await store.referencedAgain(a)).toBe(true);
    expect(await store.referencedAgain(b)).toBe(false);
    expect(await store.referencedAgain('results/x.json')).toBe(false);
    expect(await store.collectUnreferenced(tenant, [a, b])).toBe(1); // a is referenced: kept
    expect(await store.pendingBlobDeletions(1000)).toContain(b);
    expect(await store.pendingBlobDeletions(1000)).not.toContain(a);
    await store.blobsDeleted([b]);
  });

  it('puts a job in retention when it ends, keeps its records past it, and keeps its document at least as long', async () => {
    const tenant = `t-${randomUUID()}`;
    const short = new JobStore(redis, prefix, 600, () => undefined, 120);
    const d = doc(tenant);
    await short.createDocument(d);
    await short.setDocumentStatus(d.id, 'ready');
    const ready = (await short.getDocument(d.id))!;
    expect(Date.parse(ready.expiresAt) - Date.parse(ready.readyAt!)).toBeLessThanOrEqual(120_000);
    expect(Date.parse(ready.expiresAt) - Date.parse(ready.readyAt!)).toBeGreaterThan(119_000);

    const j = { ...job(tenant), documentId: d.id };
    await short.createJob(j);
    await short.addRefs({ kind: 'job', id: j.id }, tenant, [sp(tenant, 5)]);
    expect(await short.dueForDeletion(Date.now() + 200_000, 1000)).not.toContain(j.id);
    await new Promise((r) => setTimeout(r, 20));
    await short.transition(j.id, 'succeeded', { result });
    const done = (await short.getJob(j.id))!;
    expect(Date.parse(done.expiresAt)).toBe(Date.parse(done.finishedAt!) + 120_000);
    expect(await redis.ttl(`${prefix}:job:${j.id}`)).toBeGreaterThan(120);
    expect(await redis.ttl(`${prefix}:job:${j.id}`)).toBeLessThanOrEqual(120 + RETENTION_MARGIN_SECONDS);
    expect(await redis.ttl(`${prefix}:refs:${j.id}`)).toBeGreaterThan(120);
    expect(await short.dueForDeletion(Date.parse(done.expiresAt) - 1, 1000)).not.toContain(j.id);
    expect(await short.dueForDeletion(Date.parse(done.expiresAt), 1000)).toContain(j.id);
    // The document's retention moved to the job's end.
    expect((await short.getDocument(d.id))!.expiresAt).toBe(done.expiresAt);
    await short.postponeDeletion(d.id, Date.parse(done.expiresAt) + 5000);
    expect(await short.dueForDeletion(Date.parse(done.expiresAt), 1000)).not.toContain(d.id);
    await short.deleteJobRecords(j, []);
    await short.deleteDocumentRecords(d, []);
    expect(await short.dueForDeletion(Number.MAX_SAFE_INTEGER, 100000)).not.toContain(j.id);
  });
});
