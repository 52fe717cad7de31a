import { FlowProducer, Queue, UnrecoverableError, type FlowJob, type JobsOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import type { z } from 'zod';
import {
  AppError,
  DecodeJob,
  DeliverBatchWebhook,
  DeliverWebhook,
  decodeJobId,
  type ErrorCode,
  EncodeChunks,
  IndexDocument,
  QueueName,
  RETENTION,
  type BatchItemStatus,
  ChunkRef as ChunkRefSchema,
  type DocumentStatus,
  type BatchResultLine,
  type ChunkRef,
  type JobDefinition,
  type JobRecord,
  type JobResult,
  type JobStatus,
} from '@lib/shared';
import type { JobStore } from '../records/job-store.js';
import { BatchStore } from '../records/batch-store.js';

/** A Redis connection for BullMQ: blocking commands need maxRetriesPerRequest null. */
export function createRedis(url: string, options: RedisOptions = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, enableReadyCheck: true, lazyConnect: false, ...options });
}

// A job on a document still encoding is held, not queued (see Pipeline.holdForDocument): its id goes on the
// document's waiting list, with the chunk batches it will be queued with, but only while the document record still
// says encoding, checked in the same step. Answers 1 when held, 0 when the document is no longer encoding, -1 when
// it is gone.
const HOLD = `
local raw = redis.call('GET', KEYS[1])
if not raw then return -1 end
if cjson.decode(raw).status ~= 'encoding' then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], ARGV[2], 'NX')
local ttl = redis.call('TTL', KEYS[1])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[2], ttl)
  redis.call('EXPIRE', KEYS[3], ttl)
end
return 1
`;

// Takes a document's waiting list once it is no longer encoding: one caller gets the entries and the batches, any
// later caller nothing. Answers false while the document is still encoding.
const RELEASE = `
local raw = redis.call('GET', KEYS[1])
if raw and cjson.decode(raw).status == 'encoding' then return false end
local entries = redis.call('LRANGE', KEYS[2], 0, -1)
local plan = redis.call('GET', KEYS[3]) or ''
redis.call('DEL', KEYS[2], KEYS[3])
return {plan, entries}
`;

/** BullMQ keys live under the same prefix as the records, so one prefix isolates a deployment (or a test run). */
export function bullPrefix(prefix: string): string {
  return `${prefix}:bull`;
}

/** Parses a payload at the consumer; a bad payload fails at once, without retries. */
export function parsePayload<P extends z.ZodType>(def: JobDefinition<P, z.ZodType>, data: unknown): z.output<P> {
  const parsed = def.payload.safeParse(data);
  if (!parsed.success) {
    throw new AppError('INPUT_INVALID', `bad ${def.name} payload: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** What a failed step leaves for the job record: a stable code, a message, whether BullMQ retries it. */
export interface StepFailure {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

/**
 * The error a worker hands BullMQ for a step that must not be retried: BullMQ's UnrecoverableError, carrying the
 * failure as a value, so the failure handler reads the code instead of parsing it back out of message text.
 */
export class FinalStepError extends UnrecoverableError {
  constructor(readonly failure: StepFailure) {
    super(failure.message);
    this.name = 'FinalStepError';
  }
}

export function jobOptions(def: JobDefinition<z.ZodType, z.ZodType>, payload: unknown): JobsOptions {
  return { jobId: def.jobId(payload), attempts: def.retry.attempts, backoff: def.retry.backoff, ...RETENTION };
}

function node<P extends z.ZodType>(def: JobDefinition<P, z.ZodType>, payload: z.input<P>, extra: JobsOptions = {}, children?: FlowJob[]): FlowJob {
  const data = def.payload.parse(payload);
  return { name: def.name, queueName: def.queue, data, opts: { ...jobOptions(def, data), ...extra }, ...(children ? { children } : {}) };
}

/**
 * The producer side of the pipeline, shared by the API and the workers: one flow per job (a decode parent over
 * encode children), one per stored document, webhook deliveries, and the terminal transitions that trigger them.
 */
export class Pipeline {
  readonly flow: FlowProducer;
  readonly queues: Record<QueueName, Queue>;
  /** Batches: their items are jobs of this pipeline, and each job's end is counted here (`endBatchItem`). */
  readonly batches: BatchStore;

  constructor(
    private readonly redis: Redis,
    readonly prefix: string,
    private readonly store: JobStore,
    private readonly webhookRetry: { attempts: number; backoffMs: number } = { attempts: DeliverWebhook.retry.attempts, backoffMs: DeliverWebhook.retry.backoff.delay },
  ) {
    const connection = redis;
    const opts = { connection, prefix: bullPrefix(prefix) };
    this.flow = new FlowProducer(opts);
    this.queues = {
      [QueueName.Encode]: new Queue(QueueName.Encode, opts),
      [QueueName.Decode]: new Queue(QueueName.Decode, opts),
      [QueueName.Webhook]: new Queue(QueueName.Webhook, opts),
    };
    this.batches = new BatchStore(connection, prefix, store.ttlSeconds, store.retentionSeconds);
  }

  private key(...parts: string[]): string {
    return [this.prefix, ...parts].join(':');
  }

  private encodeChildren(owner: { kind: 'job' | 'document'; id: string }, tenant: string, sourceKey: string, batches: ChunkRef[][], traceparent?: string, idsKey?: string): FlowJob[] {
    // A child that fails for good fails its parent, so the job ends with a readable error instead of waiting forever.
    return batches.map((chunks, batch) => node(EncodeChunks, { v: 1, owner, tenant, sourceKey, batch, chunks, idsKey, traceparent }, { failParentOnFailure: true }));
  }

  /** Queues a job's flow; `idsKey`: its chunks' encoder ids as the API measured them (chunk-ids.ts), when stored. */
  async submitJob(job: JobRecord, batches: ChunkRef[][], traceparent?: string, idsKey?: string): Promise<void> {
    const children = this.encodeChildren({ kind: 'job', id: job.id }, job.tenant, job.sourceKey, batches, traceparent, idsKey);
    await this.flow.add(node(DecodeJob, { v: 1, jobId: job.id, tenant: job.tenant, traceparent }, {}, children));
  }

  async submitDocument(documentId: string, tenant: string, sourceKey: string, batches: ChunkRef[][], traceparent?: string, idsKey?: string): Promise<void> {
    const children = this.encodeChildren({ kind: 'document', id: documentId }, tenant, sourceKey, batches, traceparent, idsKey);
    await this.flow.add(node(IndexDocument, { v: 1, documentId, tenant, traceparent }, {}, children));
  }

  /**
   * Ends a job: the terminal transition, then its webhook. The event id is derived from the job and the status, so
   * a retried step re-enqueues the same delivery (deduplicated by job id) and receivers see one webhook-id.
   */
  async finishJob(jobId: string, status: Extract<JobStatus, 'succeeded' | 'failed' | 'cancelled'>, extra: { error?: JobRecord['error']; result?: JobResult } = {}): Promise<boolean> {
    let changed: boolean;
    try {
      changed = await this.store.transition(jobId, status, extra);
    } catch (err) {
      // A deleted job has nothing left to end (a step that was running when DELETE came ends here).
      if (err instanceof AppError && err.code === 'NOT_FOUND') return false;
      throw err;
    }
    const job = await this.store.getJob(jobId);
    // The one call that ended the job counts it for its batch, if it is a batch item (a lost count is made up by
    // refreshBatch when the batch is read).
    if (changed && job) await this.endBatchItem(jobId, job.status === status ? { status, result: job.result, error: job.error } : null);
    if (job?.webhook && job.status === status) {
      const payload = DeliverWebhook.payload.parse({ v: 1, jobId, tenant: job.tenant, eventId: `msg_${jobId}_${status}` });
      await this.queues[QueueName.Webhook].add(DeliverWebhook.name, payload, {
        ...jobOptions(DeliverWebhook, payload),
        attempts: this.webhookRetry.attempts,
        backoff: { type: 'exponential', delay: this.webhookRetry.backoffMs },
      });
    }
    return changed;
  }

  /**
   * Records a job's end in its batch (nothing for a job on its own): the result line, the count, and when it was the
   * batch's last item, the batch's one webhook. `end` null: the job's record is gone, the item expired. Idempotent.
   */
  async endBatchItem(jobId: string, end: { status: Extract<JobStatus, 'succeeded' | 'failed' | 'cancelled'>; result: JobResult | null; error: JobRecord['error'] } | null): Promise<void> {
    const item = await this.batches.itemOf(jobId);
    if (!item) return;
    const status: BatchItemStatus = end?.status ?? 'expired';
    const line: BatchResultLine = {
      custom_id: item.customId,
      index: item.index,
      status,
      jobId,
      result: end?.status === 'succeeded' ? end.result : null,
      error: end === null ? { code: 'NOT_FOUND', message: `job ${jobId} expired or was deleted before it ended` } : end.status === 'succeeded' ? null : (end.error ?? { code: 'INTERNAL', message: `the job ${end.status} without an error (this is a bug)` }),
    };
    if ((await this.batches.itemEnded(item.batchId, jobId, status, JSON.stringify(line))) !== 'ended') return;
    const batch = await this.batches.get(item.batchId);
    if (!batch?.webhook || (batch.status !== 'completed' && batch.status !== 'cancelled')) return;
    // One webhook per batch: the event id is the batch's and its final status, so a second caller's add is a no-op.
    const payload = DeliverBatchWebhook.payload.parse({ v: 1, batchId: batch.id, tenant: batch.tenant, eventId: `msg_${batch.id}_${batch.status}` });
    await this.queues[QueueName.Webhook].add(DeliverBatchWebhook.name, payload, {
      ...jobOptions(DeliverBatchWebhook, payload),
      attempts: this.webhookRetry.attempts,
      backoff: { type: 'exponential', delay: this.webhookRetry.backoffMs },
    });
  }

  /**
   * Brings a batch's counts up to its jobs: an item whose job has ended (or whose record is gone: expired) but whose
   * end was not counted, because the process that ended it stopped in between or its flow never got queued, is
   * counted now, as its job's end would have been.
   */
  async refreshBatch(batchId: string): Promise<void> {
    const pending = await this.batches.pending(batchId);
    // Items still held for their document after it was encoded (the worker stopped in between): queued now.
    if (pending.some((item) => item.jobStatus === 'queued')) {
      const batch = await this.batches.get(batchId);
      if (batch) await this.releaseHeld(batch.documentId);
    }
    for (const item of pending) {
      if (item.jobStatus !== null && !this.store.isTerminal(item.jobStatus as JobStatus)) continue;
      const job = item.jobStatus === null ? null : await this.store.getJob(item.jobId);
      const status = job?.status;
      await this.endBatchItem(item.jobId, job && (status === 'succeeded' || status === 'failed' || status === 'cancelled') ? { status, result: job.result, error: job.error } : null);
    }
  }

  /**
   * Holds a job on a document that is still encoding instead of queuing it: it is queued by `documentEnded` when the
   * document is ready (its encode children then find every chunk stored and only confirm it), or failed with the
   * document. Without this, a job's encode children running beside the document's (ENCODER_CONCURRENCY above 1, or
   * several encoder workers) both find a chunk missing and both encode it. `readyBatches` are the chunk batches it is
   * queued with then. False when the document is no longer encoding (or is gone): queue the job now.
   */
  async holdForDocument(documentId: string, jobId: string, readyBatches: ChunkRef[][], traceparent?: string): Promise<boolean> {
    const r = (await this.redis.eval(HOLD, 3, this.key('doc', documentId), this.key('docwait', documentId), this.key('docwaitplan', documentId), JSON.stringify([jobId, traceparent ?? null]), JSON.stringify(readyBatches))) as number;
    return r === 1;
  }

  /** A document has been encoded (or failed to be): its status, then the jobs held for it queued (or failed). */
  async documentEnded(documentId: string, status: Exclude<DocumentStatus, 'encoding'>, error: { code: ErrorCode; message: string } | null = null): Promise<void> {
    await this.store.setDocumentStatus(documentId, status, error);
    await this.releaseHeld(documentId);
  }

  /**
   * Queues (or fails) the jobs held for a document that is no longer encoding; nothing while it still is. Idempotent:
   * the waiting list is taken once. Also called when a batch is read, so a worker that stopped between the document's
   * status and this step leaves no job held.
   */
  async releaseHeld(documentId: string): Promise<number> {
    const taken = (await this.redis.eval(RELEASE, 3, this.key('doc', documentId), this.key('docwait', documentId), this.key('docwaitplan', documentId))) as [string, string[]] | null;
    if (!taken || taken[1].length === 0) return 0;
    const [plan, entries] = taken;
    const doc = await this.store.getDocument(documentId);
    const batches = plan === '' ? [] : ChunkRefSchema.array().array().parse(JSON.parse(plan));
    let released = 0;
    for (const entry of entries) {
      const [jobId, traceparent] = JSON.parse(entry) as [string, string | null];
      const job = await this.store.getJob(jobId);
      // Cancelled or deleted while it waited: nothing to queue.
      if (!job || this.store.isTerminal(job.status)) continue;
      if (doc?.status === 'ready' && batches.length > 0) {
        await this.submitJob(job, batches, traceparent ?? undefined);
      } else {
        const why = doc ? `failed to encode${doc.error ? `: ${doc.error.message}` : ''}` : 'was deleted';
        await this.finishJob(jobId, 'failed', { error: { code: doc?.error?.code ?? 'NOT_FOUND', message: `document ${documentId} ${why}` } });
      }
      released++;
    }
    return released;
  }

  /** Cancels a job that has not ended: marks it, then removes its flow where no worker holds it. */
  async cancel(jobId: string): Promise<boolean> {
    const changed = await this.finishJob(jobId, 'cancelled', { error: { code: 'JOB_CANCELLED', message: 'the job was cancelled' } });
    if (changed) {
      // A parent waiting for its children is removed with them; running steps see the cancelled status and stop.
      await this.queues[QueueName.Decode].remove(decodeJobId(jobId), { removeChildren: true }).catch(() => 0);
    }
    return changed;
  }

  async close(): Promise<void> {
    await Promise.all([this.flow.close(), ...Object.values(this.queues).map((q) => q.close())]);
  }
}

/** Maps a failure to what the job record shows, and whether BullMQ will try again. */
export function describeFailure(err: unknown, attemptsMade: number, attempts: number): { error: { code: ErrorCode; message: string }; final: boolean } {
  if (err instanceof FinalStepError) return { error: { code: err.failure.code, message: err.failure.message }, final: true };
  if (err instanceof AppError) {
    return { error: { code: err.code, message: err.message }, final: !err.retryable || attemptsMade + 1 >= attempts };
  }
  const message = err instanceof Error ? err.message : String(err);
  // Anything else unrecoverable (BullMQ's own, e.g. a job stalled too often) has no code of ours.
  return { error: { code: 'INTERNAL', message }, final: err instanceof UnrecoverableError || attemptsMade + 1 >= attempts };
}

/** Rethrows for BullMQ: non-retryable AppErrors become FinalStepError so no retry is wasted on them. */
export function toBullError(err: unknown): Error {
  if (err instanceof AppError && !err.retryable) return new FinalStepError({ code: err.code, message: err.message, retryable: false });
  return err instanceof Error ? err : new Error(String(err));
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTCONN']);
// ioredis gives these failures no error code, only fixed messages: this is the one place that reads them.
const IOREDIS_UNAVAILABLE = [/^Connection is closed/, /^Command timed out/, /enableOfflineQueue/, /^Reached the max retries per request limit/];

/** True for an error meaning Redis could not be reached (as opposed to a bad command). */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string };
  if (!e || typeof e !== 'object') return false;
  if (e.name === 'MaxRetriesPerRequestError') return true;
  if (e.code && NETWORK_CODES.has(e.code)) return true;
  return IOREDIS_UNAVAILABLE.some((re) => re.test(e.message ?? ''));
}
