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
return {1, cjson.decode(redis.call('HGET', KEYS[1], 'fixed')).createdAt}
`;

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
  ) {}

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
    await this.redis
      .multi()
      .hset(k, { fixed: JSON.stringify(fixed), tenant: job.tenant, status, chunksTotal: progress.chunksTotal, chunksEncoded: 0, chunksCached: 0 })
      .expire(k, this.ttlSeconds)
      // Unfinished jobs per tenant, for the cap on queued work; the terminal transition removes the id.
      .sadd(this.activeKey(job.tenant), job.id)
      .expire(this.activeKey(job.tenant), this.ttlSeconds)
      // Lexicographic order of ids is creation order: listing pages by member, not by rank, never skips or repeats.
      .zadd(index, 0, job.id)
      .expire(index, this.ttlSeconds)
      .exec();
  }

  async getJob(id: string): Promise<JobRecord | null> {
    return parseJob(await this.redis.hgetall(this.key('job', id)));
  }

  /** Newest first. The cursor is opaque to clients: the last id of the previous page. */
  async listJobs(tenant: string, limit: number, cursor?: string): Promise<Page<JobRecord>> {
    const index = this.key('jobs', tenant);
    const start = cursor ? `(${decodeCursor(cursor)}` : '+';
    const ids = await this.redis.zrange(index, start, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1);
    const page = ids.slice(0, limit);
    const records = await Promise.all(page.map((id) => this.getJob(id)));
    const expired = page.filter((_, i) => records[i] === null);
    if (expired.length > 0) await this.redis.zrem(index, ...expired);
    return {
      data: records.filter((r): r is JobRecord => r !== null && r.tenant === tenant),
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
    const [r, createdAt] = (await this.redis.eval(
      TRANSITION,
      2,
      this.key('job', id),
      this.eventsKey(id),
      to,
      now.toISOString(),
      extra.error ? JSON.stringify(extra.error) : '',
      extra.result ? JSON.stringify(extra.result) : '',
      JSON.stringify(event),
      this.key('active', ''),
      id,
      this.ttlSeconds,
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
    const existing = JSON.parse((await this.redis.get(k)) ?? 'null') as { jobId: string; fingerprint: string } | null;
    if (!existing) return this.claimIdempotencyKey(tenant, key, fingerprint, proposedId);
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
    await this.redis.multi().set(k, JSON.stringify(doc), 'EX', this.ttlSeconds).exec();
  }

  async getDocument(id: string): Promise<DocumentRecord | null> {
    const raw = await this.redis.get(this.key('doc', id));
    return raw ? (JSON.parse(raw) as DocumentRecord) : null;
  }

  async setDocumentStatus(id: string, status: DocumentStatus, error: DocumentRecord['error'] = null): Promise<void> {
    const doc = await this.getDocument(id);
    if (!doc || doc.status !== 'encoding') return;
    const next: DocumentRecord = { ...doc, status, error, readyAt: status === 'ready' ? new Date().toISOString() : null };
    await this.redis.set(this.key('doc', id), JSON.stringify(next), 'KEEPTTL');
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

