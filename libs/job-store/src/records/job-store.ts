import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  AppError,
  TERMINAL_STATUSES,
  type DocumentRecord,
  type DocumentStatus,
  type JobEvent,
  type JobProgress,
  type JobRecord,
  type JobResult,
  type JobStatus,
  type Owner,
  softPromptTenantPrefix as softPromptPrefix,
} from '@lib/shared';
import { recordJobEnd, type JobEndObserver } from '../observability/metrics.js';

/**
 * Job and document records in Redis, with an expiry. A record is a hash: the fields set at creation as one JSON
 * value, and the ones that change (status, counters, result, error) as fields of their own, so progress is an
 * atomic HINCRBY and a status change an atomic script that never leaves a terminal state.
 */

// Moves forward only (queued < encoding < decoding < terminal) and never out of a terminal state, so a late retry
// of a child cannot reopen a cancelled job. Appends the status event to the job's event stream in the same step, so
// a stream reader never sees a status the record does not have. Answers {1, createdAt} to the one caller whose call
// changed the status (the one place a job's end is counted), {0} to the others, {-1} for an unknown job.
const TRANSITION = `
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return {-1} end
local rank = {queued=1, encoding=2, decoding=3, succeeded=4, failed=4, cancelled=4}
if rank[cur] == 4 or rank[ARGV[1]] <= rank[cur] then return {0} end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
if rank[ARGV[1]] < 4 and redis.call('HEXISTS', KEYS[1], 'startedAt') == 0 then redis.call('HSET', KEYS[1], 'startedAt', ARGV[2]) end
if rank[ARGV[1]] == 4 then redis.call('HSET', KEYS[1], 'finishedAt', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'result', ARGV[4]) end
if rank[ARGV[1]] == 4 then redis.call('SREM', ARGV[6] .. redis.call('HGET', KEYS[1], 'tenant'), ARGV[7]) end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[8])
local fixed = cjson.decode(redis.call('HGET', KEYS[1], 'fixed'))
if rank[ARGV[1]] == 4 then
  -- Retention: the job is due for deletion RETENTION_SECONDS from now; its records outlive that by a margin, so the
  -- sweep (not Redis expiry) is what removes them, blobs and soft-prompt references included.
  redis.call('HSET', KEYS[1], 'expiresAt', ARGV[9])
  redis.call('ZADD', KEYS[3], ARGV[10], ARGV[7])
  for _, k in ipairs({KEYS[1], KEYS[2], KEYS[4]}) do redis.call('EXPIRE', k, ARGV[11]) end
  -- A job on a stored document keeps the document at least as long as itself.
  if type(fixed.documentId) == 'string' then
    redis.call('ZADD', KEYS[3], 'GT', ARGV[10], fixed.documentId)
    for _, k in ipairs({ARGV[12] .. 'doc:' .. fixed.documentId, ARGV[12] .. 'refs:' .. fixed.documentId, ARGV[12] .. 'docjobs:' .. fixed.documentId}) do
      if redis.call('TTL', k) >= 0 and redis.call('TTL', k) < tonumber(ARGV[11]) then redis.call('EXPIRE', k, ARGV[11]) end
    end
  end
end
return {1, fixed.createdAt}
`;

// Records a chunk's soft prompt as referenced by an owner (a job or a document): each member ("<encoderId>/<hash>")
// is counted once per owner, however often its encode step is retried. Refused (-1) when the owner no longer exists,
// so a step still running after its job was deleted cannot reference anything again.
const ADD_REFS = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local added = 0
for i = 1, #ARGV do
  if redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[3], ARGV[i], 1)
    added = added + 1
  end
end
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[2], ttl) end
return added
`;

// Deletes an owner's records and releases its soft-prompt references in one step: every soft prompt whose count falls
// to zero, and the owner's own blobs (ARGV[4..]), go into the pending-deletion set, returned to the caller, which
// deletes the blobs and then removes them from the set (what it could not delete, the sweep retries). Idempotent: a
// second call finds no references to release. KEYS: record, refs, refcount, gc, index, retention, a set to leave
// (active jobs), a key to drop with the record (the job's events, the document's job set), the id's tombstone, the
// tenant's stored-soft-prompt marks (a soft prompt going to deletion is no longer marked stored).
// ARGV: id, soft-prompt key prefix, the document's job set to leave (or ''), tombstone seconds, own blobs.
const DELETE_OWNER = `
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('HINCRBY', KEYS[3], m, -1) <= 0 then
    redis.call('HDEL', KEYS[3], m)
    redis.call('HDEL', KEYS[10], m)
    local key = ARGV[2] .. m
    redis.call('SADD', KEYS[4], key)
    table.insert(out, key)
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[8])
-- A tombstone, so an Idempotency-Key bound to this id is free again (see claimIdempotencyKey).
redis.call('SET', KEYS[9], '1', 'EX', ARGV[4])
redis.call('ZREM', KEYS[5], ARGV[1])
redis.call('ZREM', KEYS[6], ARGV[1])
redis.call('SREM', KEYS[7], ARGV[1])
if ARGV[3] ~= '' then redis.call('SREM', ARGV[3], ARGV[1]) end
for i = 5, #ARGV do
  redis.call('SADD', KEYS[4], ARGV[i])
  table.insert(out, ARGV[i])
end
return out
`;

// Soft prompts written by a step whose owner was deleted meanwhile: those nobody references go to the
// pending-deletion set (a key referenced again since is left alone).
const COLLECT_UNREFERENCED = `
local n = 0
for i = 2, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then
    redis.call('SADD', KEYS[2], ARGV[1] .. ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    n = n + 1
  end
end
return n
`;

// Marks soft prompts as written, only those still referenced: one whose last owner was deleted while it was being
// written is going to deletion, and a mark would outlive its blob. KEYS: refcount, stored marks.
const MARK_STORED = `
local n = 0
for i = 1, #ARGV do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], '1')
    n = n + 1
  end
end
return n
`;

// Replaces a key's value only if it is still the one the caller read.
const SWAP_IF_EQUAL = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
`;

/** Records outlive their retention by this much: the sweep deletes them first, Redis expiry is the backstop. */
export const RETENTION_MARGIN_SECONDS = 3600;

/** One entry of a job's event stream: its id (the SSE event id a client resumes from) and the event. */
export interface StoredJobEvent {
  id: string;
  event: JobEvent;
}

/** Server-generated ids: a time prefix (so listings sort by creation) and 80 random bits. */
export function newId(kind: 'job' | 'doc'): string {
  const time = Date.now().toString(36).padStart(9, '0');
  return `${kind}_${time}${randomBytes(10).toString('hex')}`;
}

export const ID_PATTERN = /^(job|doc)_[0-9a-z]{9}[0-9a-f]{20}$/;

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

export class JobStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly ttlSeconds: number,
    /** Told once per job when it ends (metrics, the log line of a final failure): see `transition`. */
    private readonly onJobEnd: JobEndObserver = recordJobEnd,
    /** RETENTION_SECONDS: how long a finished job or document is kept before the retention sweep deletes it. */
    readonly retentionSeconds: number = ttlSeconds,
  ) {}

  /** How long finished records live in Redis: past their retention by a margin (see RETENTION_MARGIN_SECONDS). */
  private get finishedTtlSeconds(): number {
    return this.retentionSeconds + RETENTION_MARGIN_SECONDS;
  }

  /** Indexes outlive every record they list. */
  private get indexTtlSeconds(): number {
    return Math.max(this.ttlSeconds, this.finishedTtlSeconds);
  }

  private key(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }

  activeKey(tenant: string): string {
    return this.key('active', tenant);
  }

  /** The job's event stream (a Redis stream, kept as long as the job): what GET /v1/jobs/:id/events replays. */
  eventsKey(jobId: string): string {
    return this.key('events', jobId);
  }

  async createJob(job: JobRecord): Promise<void> {
    const { status, progress, startedAt, finishedAt, result, error, ...fixed } = job;
    const k = this.key('job', job.id);
    const index = this.key('jobs', job.tenant);
    const multi = this.redis
      .multi()
      .hset(k, { fixed: JSON.stringify(fixed), tenant: job.tenant, status, chunksTotal: progress.chunksTotal, chunksEncoded: 0, chunksCached: 0 })
      .expire(k, this.ttlSeconds)
      // Unfinished jobs per tenant, for the cap on queued work; the terminal transition removes the id.
      .sadd(this.activeKey(job.tenant), job.id)
      .expire(this.activeKey(job.tenant), this.ttlSeconds)
      // Lexicographic order of ids is creation order: listing pages by member, not by rank, never skips or repeats.
      .zadd(index, 0, job.id)
      .expire(index, this.indexTtlSeconds);
    // The jobs asked on a document: deleting the document deletes them (their results quote it).
    if (job.documentId !== null) multi.sadd(this.key('docjobs', job.documentId), job.id).expire(this.key('docjobs', job.documentId), this.indexTtlSeconds);
    await multi.exec();
  }

  async getJob(id: string): Promise<JobRecord | null> {
    return parseJob(await this.redis.hgetall(this.key('job', id)));
  }

  /** Newest first. The cursor is opaque to clients: the last id of the previous page. */
  async listJobs(tenant: string, limit: number, cursor?: string): Promise<Page<JobRecord>> {
    return this.listIndex(this.key('jobs', tenant), tenant, limit, cursor, (id) => this.getJob(id));
  }

  /**
   * One page of a tenant's index (a sorted set of ids, newest last by id): records that have expired are dropped
   * from the index as they are met.
   */
  private async listIndex<T extends { tenant: string }>(index: string, tenant: string, limit: number, cursor: string | undefined, get: (id: string) => Promise<T | null>): Promise<Page<T>> {
    const start = cursor ? `(${decodeCursor(cursor)}` : '+';
    const ids = await this.redis.zrange(index, start, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1);
    const page = ids.slice(0, limit);
    const records: (T | null)[] = await Promise.all(page.map(get));
    const expired = page.filter((_, i) => records[i] === null);
    if (expired.length > 0) await this.redis.zrem(index, ...expired);
    return {
      data: records.filter((r): r is T => r !== null && r.tenant === tenant),
      nextCursor: ids.length > limit ? encodeCursor(page.at(-1)!) : null,
    };
  }

  /**
   * Returns true when the status changed (false: already there, later, or terminal). The call that ends a job is the
   * only one that returns true for it, so that call tells `onJobEnd`: each job is counted once, however many retries,
   * children or cancellations race to end it.
   */
  async transition(id: string, to: JobStatus, extra: { error?: JobRecord['error']; result?: JobResult } = {}): Promise<boolean> {
    const event: JobEvent = { type: 'status', status: to, ...(extra.error ? { error: extra.error } : {}) };
    const now = new Date();
    const due = now.getTime() + this.retentionSeconds * 1000;
    const [r, createdAt] = (await this.redis.eval(
      TRANSITION,
      4,
      this.key('job', id),
      this.eventsKey(id),
      this.retentionKey,
      this.key('refs', id),
      to,
      now.toISOString(),
      extra.error ? JSON.stringify(extra.error) : '',
      extra.result ? JSON.stringify(extra.result) : '',
      JSON.stringify(event),
      this.key('active', ''),
      id,
      this.ttlSeconds,
      new Date(due).toISOString(),
      due,
      this.finishedTtlSeconds,
      this.key(''),
    )) as [number, string?];
    if (r === -1) throw new AppError('NOT_FOUND', `job ${id} not found`);
    if (r === 1 && (to === 'succeeded' || to === 'failed' || to === 'cancelled')) {
      const durationSeconds = Math.max(0, (now.getTime() - Date.parse(createdAt ?? '')) / 1000);
      this.onJobEnd({ jobId: id, status: to, durationSeconds: Number.isFinite(durationSeconds) ? durationSeconds : 0, ...(extra.error ? { error: extra.error } : {}) });
    }
    return r === 1;
  }

  async addProgress(id: string, encoded: number, cached: number): Promise<JobProgress> {
    const k = this.key('job', id);
    const [, , all] = (await this.redis
      .multi()
      .hincrby(k, 'chunksEncoded', encoded)
      .hincrby(k, 'chunksCached', cached)
      .hmget(k, 'chunksTotal', 'chunksEncoded', 'chunksCached')
      .exec())!.map(([err, v]) => {
      if (err) throw err;
      return v;
    }) as [number, number, string[]];
    const progress = { chunksTotal: Number(all[0]), chunksEncoded: Number(all[1]), chunksCached: Number(all[2]) };
    await this.publish(id, { type: 'progress', progress });
    return progress;
  }

  /** Appends an event to the job's event stream; returns its id. */
  async publish(id: string, event: JobEvent): Promise<string> {
    const key = this.eventsKey(id);
    const [[err, eventId]] = (await this.redis.multi().xadd(key, '*', 'e', JSON.stringify(event)).expire(key, this.ttlSeconds).exec())! as [[Error | null, string]];
    if (err) throw err;
    return eventId;
  }

  /**
   * The job and the id of the last event in its stream, read in one step: every event after that id happened after
   * the record was read, so a reader that starts there misses nothing and sees nothing twice. `0-0` when none yet.
   */
  async snapshot(id: string): Promise<{ job: JobRecord | null; lastEventId: string }> {
    const [[e1, last], [e2, hash]] = (await this.redis.multi().xrevrange(this.eventsKey(id), '+', '-', 'COUNT', 1).hgetall(this.key('job', id)).exec())! as [
      [Error | null, [string, string[]][]],
      [Error | null, Record<string, string>],
    ];
    if (e1 || e2) throw e1 ?? e2;
    return { job: parseJob(hash), lastEventId: last[0]?.[0] ?? '0-0' };
  }

  /**
   * The events after `afterId`, oldest first, waiting up to `blockMs` for one when there are none (0: no wait).
   * Blocking holds the connection: pass one of the reader's own, not the shared one.
   */
  async readEvents(id: string, afterId: string, blockMs: number, connection: Redis = this.redis, count = 200): Promise<StoredJobEvent[]> {
    const key = this.eventsKey(id);
    const reply = blockMs > 0 ? await connection.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', key, afterId) : await connection.xread('COUNT', count, 'STREAMS', key, afterId);
    const entries = reply?.[0]?.[1] ?? [];
    return entries.map(([eventId, fields]) => ({ id: eventId, event: JSON.parse(fields[fields.indexOf('e') + 1] ?? 'null') as JobEvent }));
  }

  isTerminal(status: JobStatus): boolean {
    return TERMINAL_STATUSES.includes(status);
  }

  /**
   * Binds an Idempotency-Key to a job: the first caller gets `{ jobId: proposed, created: true }`; a later caller
   * with the same body fingerprint gets the first job; with another body, CONFLICT.
   */
  async claimIdempotencyKey(tenant: string, key: string, fingerprint: string, proposedId: string): Promise<{ jobId: string; created: boolean }> {
    const k = this.key('idem', tenant, createHash('sha256').update(key).digest('hex'));
    const value = JSON.stringify({ jobId: proposedId, fingerprint });
    const set = await this.redis.set(k, value, 'EX', this.ttlSeconds, 'NX');
    if (set === 'OK') return { jobId: proposedId, created: true };
    const raw = await this.redis.get(k);
    const existing = JSON.parse(raw ?? 'null') as { jobId: string; fingerprint: string } | null;
    if (!existing) return this.claimIdempotencyKey(tenant, key, fingerprint, proposedId);
    // The job it named was deleted: the key is free again (it must not replay a job that no longer exists, nor answer
    // "still being created" until it expires). Only the caller whose swap succeeds takes it.
    if ((await this.redis.exists(this.key('deleted', existing.jobId))) === 1) {
      const swapped = await this.redis.eval(SWAP_IF_EQUAL, 1, k, raw!, value, this.ttlSeconds);
      return swapped === 1 ? { jobId: proposedId, created: true } : this.claimIdempotencyKey(tenant, key, fingerprint, proposedId);
    }
    if (existing.fingerprint !== fingerprint) {
      throw new AppError('CONFLICT', 'this Idempotency-Key was used with a different request body');
    }
    return { jobId: existing.jobId, created: false };
  }

  async releaseIdempotencyKey(tenant: string, key: string): Promise<void> {
    await this.redis.del(this.key('idem', tenant, createHash('sha256').update(key).digest('hex')));
  }

  async createDocument(doc: DocumentRecord): Promise<void> {
    const k = this.key('doc', doc.id);
    const index = this.key('docs', doc.tenant);
    await this.redis.multi().set(k, JSON.stringify(doc), 'EX', this.ttlSeconds).zadd(index, 0, doc.id).expire(index, this.indexTtlSeconds).exec();
  }

  /** The document; its `expiresAt` is when the retention sweep will delete it, once it has ended or been asked. */
  async getDocument(id: string): Promise<DocumentRecord | null> {
    const [[e1, raw], [e2, due]] = (await this.redis.multi().get(this.key('doc', id)).zscore(this.retentionKey, id).exec())! as [[Error | null, string | null], [Error | null, string | null]];
    if (e1 || e2) throw e1 ?? e2;
    if (!raw) return null;
    const doc = JSON.parse(raw) as DocumentRecord;
    return due === null ? doc : { ...doc, expiresAt: new Date(Number(due)).toISOString() };
  }

  async setDocumentStatus(id: string, status: DocumentStatus, error: DocumentRecord['error'] = null): Promise<void> {
    const doc = await this.getDocument(id);
    if (!doc || doc.status !== 'encoding') return;
    const now = Date.now();
    const due = now + this.retentionSeconds * 1000;
    const next: DocumentRecord = { ...doc, status, error, readyAt: status === 'ready' ? new Date(now).toISOString() : null, expiresAt: new Date(due).toISOString() };
    // Encoded (or failed): finished data from now on, kept RETENTION_SECONDS (longer while jobs on it end later).
    await this.redis
      .multi()
      .set(this.key('doc', id), JSON.stringify(next), 'EX', this.finishedTtlSeconds)
      .zadd(this.retentionKey, 'GT', due, id)
      .expire(this.key('refs', id), this.finishedTtlSeconds)
      .exec();
  }

  /** Newest first, paged as listJobs. */
  async listDocuments(tenant: string, limit: number, cursor?: string): Promise<Page<DocumentRecord>> {
    return this.listIndex(this.key('docs', tenant), tenant, limit, cursor, (id) => this.getDocument(id));
  }

  // --- Data lifecycle: soft-prompt references, deletion, retention -------------------------------------------------
  //
  // Soft prompts are content-addressed per tenant and shared by every job and document of the tenant whose text has
  // the chunk, so a delete may remove only those no one else still references. They are reference-counted in Redis,
  // not found by a sweep that lists what is still referenced: a sweep reads every reference of the tenant (all its
  // jobs' and documents' chunks) on every delete, while a count costs a delete only its own chunks, and the Lua
  // scripts keep it exact: a member is counted once per owner (a set per owner), released once (the set goes with the
  // record, in the same script), and an owner that is gone can no longer add one. Counts can only err high (an owner
  // whose records Redis expired without a delete: a soft prompt kept, never one deleted under a reader); the tenant
  // purge removes those too. A soft prompt deleted while a new job was reusing it is encoded again by the decoder.

  private get retentionKey(): string {
    return this.key('retention');
  }

  private get gcKey(): string {
    return this.key('gc');
  }

  private refcountKey(tenant: string): string {
    return this.key('refcount', tenant);
  }

  /**
   * Which of a tenant's soft prompts are written: one Redis hash, so an encode step learns which of its chunks are
   * stored in one round trip whatever the blob driver (S3 has no batch HEAD). A mark is set after the blob is written
   * and dropped with the blob's last reference, so it errs only towards a blob lost outside this service (a wiped
   * folder or bucket): the decoder finds that one missing and encodes it again from the source.
   */
  private storedKey(tenant: string): string {
    return this.key('stored', tenant);
  }

  private ownerKey(owner: Owner): string {
    return this.key(owner.kind === 'job' ? 'job' : 'doc', owner.id);
  }

  /** The part of a soft-prompt key after `soft-prompts/<tenant>/`: what an owner's reference set holds. */
  private refMember(tenant: string, key: string): string {
    const prefix = softPromptPrefix(tenant);
    if (!key.startsWith(prefix)) throw new AppError('INTERNAL', `soft prompt ${key.slice(0, 80)} is not tenant ${tenant}'s (this is a bug)`);
    return key.slice(prefix.length);
  }

  /**
   * Records that an owner uses these soft prompts (call before reusing or writing them). False when the owner no
   * longer exists (deleted while its step ran): the step must not write them.
   */
  async addRefs(owner: Owner, tenant: string, softPromptKeys: readonly string[]): Promise<boolean> {
    if (softPromptKeys.length === 0) return (await this.redis.exists(this.ownerKey(owner))) === 1;
    const members = [...new Set(softPromptKeys.map((k) => this.refMember(tenant, k)))];
    const r = (await this.redis.eval(ADD_REFS, 3, this.ownerKey(owner), this.key('refs', owner.id), this.refcountKey(tenant), ...members)) as number;
    return r >= 0;
  }

  /** For each soft prompt, whether it is written (see storedKey); one round trip. */
  async storedSoftPrompts(tenant: string, softPromptKeys: readonly string[]): Promise<boolean[]> {
    if (softPromptKeys.length === 0) return [];
    const marks = await this.redis.hmget(this.storedKey(tenant), ...softPromptKeys.map((k) => this.refMember(tenant, k)));
    return marks.map((m) => m !== null);
  }

  /** Marks written soft prompts as stored (those still referenced: see MARK_STORED); one round trip. */
  async markStored(tenant: string, softPromptKeys: readonly string[]): Promise<void> {
    if (softPromptKeys.length === 0) return;
    const members = [...new Set(softPromptKeys.map((k) => this.refMember(tenant, k)))];
    await this.redis.eval(MARK_STORED, 2, this.refcountKey(tenant), this.storedKey(tenant), ...members);
  }

  /** How many owners reference a soft prompt (0 when none): for tests and the pending-deletion check. */
  async refCount(tenant: string, softPromptKey: string): Promise<number> {
    return Number((await this.redis.hget(this.refcountKey(tenant), this.refMember(tenant, softPromptKey))) ?? 0);
  }

  /** Whether an owner's records still exist. */
  async ownerExists(owner: Owner): Promise<boolean> {
    return (await this.redis.exists(this.ownerKey(owner))) === 1;
  }

  /** Soft prompts a step wrote for an owner deleted meanwhile: the unreferenced ones become pending deletions. */
  async collectUnreferenced(tenant: string, softPromptKeys: readonly string[]): Promise<number> {
    if (softPromptKeys.length === 0) return 0;
    const members = [...new Set(softPromptKeys.map((k) => this.refMember(tenant, k)))];
    return (await this.redis.eval(COLLECT_UNREFERENCED, 3, this.refcountKey(tenant), this.gcKey, this.storedKey(tenant), softPromptPrefix(tenant), ...members)) as number;
  }

  /**
   * Deletes a job's records (hash, events, indexes, retention entry, references) and returns the blobs to delete now:
   * its result, its own source (not a document's), and the soft prompts it was the last to reference. They stay in
   * the pending-deletion set until `blobsDeleted` confirms them.
   */
  async deleteJobRecords(job: Pick<JobRecord, 'id' | 'tenant' | 'documentId' | 'sourceKey'>, ownBlobs: readonly string[]): Promise<string[]> {
    return (await this.redis.eval(
      DELETE_OWNER,
      10,
      this.key('job', job.id),
      this.key('refs', job.id),
      this.refcountKey(job.tenant),
      this.gcKey,
      this.key('jobs', job.tenant),
      this.retentionKey,
      this.activeKey(job.tenant),
      this.eventsKey(job.id),
      this.key('deleted', job.id),
      this.storedKey(job.tenant),
      job.id,
      softPromptPrefix(job.tenant),
      job.documentId === null ? '' : this.key('docjobs', job.documentId),
      this.ttlSeconds,
      ...ownBlobs,
    )) as string[];
  }

  /** The same for a document (its jobs are deleted first: see `jobsOfDocument`). */
  async deleteDocumentRecords(doc: Pick<DocumentRecord, 'id' | 'tenant'>, ownBlobs: readonly string[]): Promise<string[]> {
    return (await this.redis.eval(
      DELETE_OWNER,
      10,
      this.key('doc', doc.id),
      this.key('refs', doc.id),
      this.refcountKey(doc.tenant),
      this.gcKey,
      this.key('docs', doc.tenant),
      this.retentionKey,
      this.key('none'),
      this.key('docjobs', doc.id),
      this.key('deleted', doc.id),
      this.storedKey(doc.tenant),
      doc.id,
      softPromptPrefix(doc.tenant),
      '',
      this.ttlSeconds,
      ...ownBlobs,
    )) as string[];
  }

  /** The jobs asked on a document (ids; some may have expired). */
  async jobsOfDocument(documentId: string): Promise<string[]> {
    return this.redis.smembers(this.key('docjobs', documentId));
  }

  /** Every job or document id a tenant's index lists (for the tenant purge). */
  async allIds(kind: 'job' | 'doc', tenant: string): Promise<string[]> {
    return this.redis.zrange(this.key(kind === 'job' ? 'jobs' : 'docs', tenant), '0', '-1');
  }

  /** Blob deletions pending (from deletes whose blob removal failed or was interrupted), at most `limit`. */
  async pendingBlobDeletions(limit: number): Promise<string[]> {
    return (await this.redis.srandmember(this.gcKey, limit)) as unknown as string[];
  }

  /** True when a pending soft-prompt deletion is referenced again (a new job reuses it): it must be kept. */
  async referencedAgain(key: string): Promise<boolean> {
    const m = /^soft-prompts\/([^/]+)\//.exec(key);
    return m !== null && (await this.redis.hexists(this.refcountKey(m[1]!), key.slice(m[0].length))) === 1;
  }

  async blobsDeleted(keys: readonly string[]): Promise<void> {
    if (keys.length > 0) await this.redis.srem(this.gcKey, ...keys);
  }

  /** Ids (jobs and documents) whose retention ended by `nowMs`, oldest first. */
  async dueForDeletion(nowMs: number, limit: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.retentionKey, '-inf', nowMs, 'LIMIT', 0, limit);
  }

  /** Moves an id's retention to `dueMs` (a document with a job still running is kept until that job ends). */
  async postponeDeletion(id: string, dueMs: number): Promise<void> {
    await this.redis.zadd(this.retentionKey, dueMs, id);
  }

  /** Forgets an id's retention (its records are gone already: Redis expired them). */
  async dropRetention(id: string): Promise<void> {
    await this.redis.zrem(this.retentionKey, id);
  }

  /** Drops what the tenant purge leaves: the soft-prompt counts and marks, and the idempotency keys. */
  async purgeTenantKeys(tenant: string): Promise<void> {
    await this.redis.del(this.refcountKey(tenant), this.storedKey(tenant));
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.key('idem', tenant)}:*`, 'COUNT', 500);
      if (keys.length > 0) await this.redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  }

  async ping(): Promise<void> {
    try {
      await this.redis.ping();
    } catch (err) {
      throw new AppError('QUEUE_UNAVAILABLE', `Redis is unavailable: ${(err as Error).message}`);
    }
  }
}

function parseJob(h: Record<string, string>): JobRecord | null {
  if (!h.fixed) return null;
  const fixed = JSON.parse(h.fixed) as Omit<JobRecord, 'status' | 'progress' | 'startedAt' | 'finishedAt' | 'result' | 'error'>;
  return {
    ...fixed,
    status: h.status as JobStatus,
    progress: { chunksTotal: Number(h.chunksTotal), chunksEncoded: Number(h.chunksEncoded), chunksCached: Number(h.chunksCached) },
    startedAt: h.startedAt ?? null,
    finishedAt: h.finishedAt ?? null,
    // Set when the job ended: when the retention sweep deletes it.
    expiresAt: h.expiresAt ?? fixed.expiresAt,
    result: h.result ? (JSON.parse(h.result) as JobResult) : null,
    error: h.error ? JSON.parse(h.error) : null,
  };
}

function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!ID_PATTERN.test(id)) throw new AppError('INPUT_INVALID', 'invalid cursor');
  return id;
}

