import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AppError, type BatchItemStatus, type BatchRecord } from '@lib/shared';
import { RETENTION_MARGIN_SECONDS } from './job-store.js';

/**
 * Batch records in Redis, beside the job records of their items (same prefix). A batch is a hash (the fixed fields as
 * one JSON value; status, the counts by outcome and the end time as fields of their own), its items in request order
 * (`[custom_id, jobId]`), the set of items that have ended, its result lines (JSONL, in the order items ended), and per
 * item job a pointer back to the batch. The jobs themselves are ordinary jobs: the batch only counts their ends.
 */

// Counts one item's end, once however many callers report it (the job's terminal transition, a read that finds the
// end unrecorded), appends its result line in the same step, and ends the batch with its last item. Answers -1 for
// an unknown batch, 0 when the item was counted already, 1 when counted, 2 when it was the batch's last.
const ITEM_ENDED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
if redis.call('SCARD', KEYS[2]) < tonumber(redis.call('HGET', KEYS[1], 'total')) then return 1 end
local final = 'completed'
if redis.call('HEXISTS', KEYS[1], 'cancelRequestedAt') == 1 then final = 'cancelled' end
redis.call('HSET', KEYS[1], 'status', final, 'finishedAt', ARGV[4], 'expiresAt', ARGV[6])
for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
return 2
`;

// A cancel marks a batch in progress as cancelling (its last item's end then makes it cancelled). Answers the status
// the batch had (false for an unknown batch).
const REQUEST_CANCEL = `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status == 'in_progress' then redis.call('HSET', KEYS[1], 'status', 'cancelling', 'cancelRequestedAt', ARGV[1]) end
return status
`;

export const BATCH_ID_PATTERN = /^bat_[0-9a-z]{9}[0-9a-f]{20}$/;

/** As job ids: a time prefix (creation order) and 80 random bits. */
export function newBatchId(): string {
  return `bat_${Date.now().toString(36).padStart(9, '0')}${randomBytes(10).toString('hex')}`;
}

/** An item of a batch as stored: its place in the request, its name and its job. */
export interface StoredBatchItem {
  index: number;
  customId: string;
  jobId: string;
}

/** Where a job sits in a batch (read when the job ends). */
export interface BatchItemRef extends StoredBatchItem {
  batchId: string;
}

export type NewBatch = Pick<BatchRecord, 'id' | 'tenant' | 'documentId' | 'webhook' | 'metadata'>;

export class BatchStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    /** How long a batch that has not ended is kept (JOB_TTL_SECONDS, as its jobs). */
    readonly ttlSeconds: number,
    /** How long an ended batch and its result lines are kept (RETENTION_SECONDS, as its jobs). */
    readonly retentionSeconds: number,
  ) {}

  private key(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }

  private keys(id: string): [string, string, string, string] {
    return [this.key('batch', id), this.key('batchdone', id), this.key('batchresults', id), this.key('batchitems', id)];
  }

  /** Stores a batch and its items (before their jobs are created, so an item job's end always finds its batch). */
  async create(batch: NewBatch, items: readonly Omit<StoredBatchItem, 'index'>[], now = new Date()): Promise<BatchRecord> {
    const expiresAt = new Date(now.getTime() + this.ttlSeconds * 1000).toISOString();
    const fixed: Omit<BatchRecord, 'status' | 'ended' | 'cancelRequestedAt' | 'finishedAt' | 'expiresAt'> = { ...batch, total: items.length, createdAt: now.toISOString() };
    const [k, , , itemsKey] = this.keys(batch.id);
    const multi = this.redis
      .multi()
      .hset(k, { fixed: JSON.stringify(fixed), status: 'in_progress', total: items.length, succeeded: 0, failed: 0, cancelled: 0, expired: 0, expiresAt })
      .expire(k, this.ttlSeconds);
    for (let i = 0; i < items.length; i += 1000) multi.rpush(itemsKey, ...items.slice(i, i + 1000).map((it) => JSON.stringify([it.customId, it.jobId])));
    multi.expire(itemsKey, this.ttlSeconds);
    items.forEach((it, index) => multi.set(this.key('jobbatch', it.jobId), JSON.stringify([batch.id, index, it.customId]), 'EX', this.ttlSeconds));
    // The batches on a document, deleted with it (deleteForDocument): their result lines quote it.
    const docBatches = this.key('docbatches', batch.documentId);
    const indexTtl = Math.max(this.ttlSeconds, this.retentionSeconds + RETENTION_MARGIN_SECONDS);
    multi.sadd(docBatches, batch.id).expire(docBatches, indexTtl);
    // The tenant's batches for GET /v1/batches: ids sort by creation, so pages go by member (as job listings do).
    multi.zadd(this.key('batches', batch.tenant), 0, batch.id).expire(this.key('batches', batch.tenant), indexTtl);
    await exec(multi);
    return { ...fixed, status: 'in_progress', ended: { succeeded: 0, failed: 0, cancelled: 0, expired: 0 }, cancelRequestedAt: null, finishedAt: null, expiresAt };
  }

  async get(id: string): Promise<BatchRecord | null> {
    const h = await this.redis.hgetall(this.key('batch', id));
    if (!h.fixed) return null;
    const fixed = JSON.parse(h.fixed) as Omit<BatchRecord, 'status' | 'ended' | 'cancelRequestedAt' | 'finishedAt' | 'expiresAt'>;
    return {
      ...fixed,
      status: h.status as BatchRecord['status'],
      ended: { succeeded: Number(h.succeeded), failed: Number(h.failed), cancelled: Number(h.cancelled), expired: Number(h.expired) },
      cancelRequestedAt: h.cancelRequestedAt ?? null,
      finishedAt: h.finishedAt ?? null,
      expiresAt: h.expiresAt!,
    };
  }

  /** The items in request order. */
  async items(id: string): Promise<StoredBatchItem[]> {
    const raw = await this.redis.lrange(this.key('batchitems', id), 0, -1);
    return raw.map((r, index) => {
      const [customId, jobId] = JSON.parse(r) as [string, string];
      return { index, customId, jobId };
    });
  }

  /** The items that have not ended, with their jobs' current status (null: the job record is gone). */
  async pending(id: string): Promise<(StoredBatchItem & { jobStatus: string | null })[]> {
    const [items, done] = await Promise.all([this.items(id), this.redis.smembers(this.key('batchdone', id))]);
    const ended = new Set(done);
    const open = items.filter((it) => !ended.has(it.jobId));
    if (open.length === 0) return [];
    const multi = this.redis.multi();
    for (const it of open) multi.hget(this.key('job', it.jobId), 'status');
    const statuses = (await exec(multi)) as (string | null)[];
    return open.map((it, i) => ({ ...it, jobStatus: statuses[i] ?? null }));
  }

  /** The batch a job is an item of, or null for a job on its own. */
  async itemOf(jobId: string): Promise<BatchItemRef | null> {
    const raw = await this.redis.get(this.key('jobbatch', jobId));
    if (raw === null) return null;
    const [batchId, index, customId] = JSON.parse(raw) as [string, number, string];
    return { batchId, index, customId, jobId };
  }

  /**
   * Records an item's end and its result line, once per item. 'ended' when it was the batch's last item (the caller
   * sends the batch's webhook), 'counted' when it was recorded now, 'known' when it was recorded already (or the batch
   * is gone).
   */
  async itemEnded(batchId: string, jobId: string, status: BatchItemStatus, line: string, now = new Date()): Promise<'ended' | 'counted' | 'known'> {
    const finishedTtl = this.retentionSeconds + RETENTION_MARGIN_SECONDS;
    const r = (await this.redis.eval(
      ITEM_ENDED,
      4,
      ...this.keys(batchId),
      jobId,
      status,
      line,
      now.toISOString(),
      finishedTtl,
      new Date(now.getTime() + this.retentionSeconds * 1000).toISOString(),
    )) as number;
    return r === 2 ? 'ended' : r === 1 ? 'counted' : 'known';
  }

  /** Marks a batch cancelling; answers the status it had, or null for an unknown batch. */
  async requestCancel(id: string, now = new Date()): Promise<BatchRecord['status'] | null> {
    return (await this.redis.eval(REQUEST_CANCEL, 1, this.key('batch', id), now.toISOString())) as BatchRecord['status'] | null;
  }

  /**
   * Deletes the batches on a document (its records, item mapping and result lines), as the document is deleted: by
   * DELETE /v1/documents/:id, the retention sweep or the tenant purge, which delete the batches' jobs with it.
   * Returns the batch ids.
   */
  async deleteForDocument(documentId: string): Promise<string[]> {
    const docBatches = this.key('docbatches', documentId);
    const ids = await this.redis.smembers(docBatches);
    for (const id of ids) {
      const tenant = (await this.get(id))?.tenant;
      if (tenant !== undefined) await this.redis.zrem(this.key('batches', tenant), id);
      const jobIds = (await this.items(id)).map((it) => this.key('jobbatch', it.jobId));
      for (let i = 0; i < jobIds.length; i += 1000) await this.redis.del(...jobIds.slice(i, i + 1000));
      // A tombstone, as a deleted job leaves: an Idempotency-Key bound to the batch is free again (JobStore.claimIdempotencyKey).
      await this.redis.multi().del(...this.keys(id)).set(this.key('deleted', id), '1', 'EX', this.ttlSeconds).exec();
    }
    await this.redis.del(docBatches);
    return ids;
  }

  /** A tenant's batches, newest first; the cursor is the last id of the previous page (opaque to clients). */
  async list(tenant: string, limit: number, cursor?: string): Promise<{ data: BatchRecord[]; nextCursor: string | null }> {
    const index = this.key('batches', tenant);
    let start = '+';
    if (cursor !== undefined) {
      const after = Buffer.from(cursor, 'base64url').toString('utf8');
      if (!BATCH_ID_PATTERN.test(after)) throw new AppError('INPUT_INVALID', 'invalid cursor');
      start = `(${after}`;
    }
    const ids = await this.redis.zrange(index, start, '-', 'BYLEX', 'REV', 'LIMIT', 0, limit + 1);
    const page = ids.slice(0, limit);
    const records = await Promise.all(page.map((id) => this.get(id)));
    const gone = page.filter((_, i) => records[i] === null);
    if (gone.length > 0) await this.redis.zrem(index, ...gone);
    return {
      data: records.filter((r): r is BatchRecord => r !== null && r.tenant === tenant),
      nextCursor: ids.length > limit ? Buffer.from(page.at(-1)!, 'utf8').toString('base64url') : null,
    };
  }

  /** Result lines (JSON texts) from line `offset` on, in the order the items ended. */
  async results(id: string, offset = 0): Promise<string[]> {
    return this.redis.lrange(this.key('batchresults', id), offset, -1);
  }
}

async function exec(multi: ReturnType<Redis['multi']>): Promise<unknown[]> {
  const replies = (await multi.exec()) ?? [];
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
