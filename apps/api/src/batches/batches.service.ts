import { createHash } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { BATCH_ID_PATTERN, newBatchId, newId, type JobStore, type Pipeline } from '@lib/job-store';
import { AppError, BatchItem, CreateBatchJson, type BatchRecord, type Config, type DocumentRecord, type JobStatus } from '@lib/shared';
import { mapLimit } from '@lib/blob-store';
import { z } from 'zod';
import { parseJsonBody, parseWith, type ParsedBody } from '../common/request-body.js';
import { JobsService } from '../jobs/jobs.service.js';
import { LifecycleService } from '../lifecycle/lifecycle.service.js';
import { CONFIG, LOGGER, PIPELINE, REDIS, STORE } from '../tokens.js';

/**
 * The request as the API reads it: the contract's CreateBatchJson with `items` either an array (JSON) or JSONL text
 * (a multipart `items` field, or a JSON string), each item then parsed on its own so a refusal names it.
 */
const BatchRequest = CreateBatchJson.extend({ items: z.union([z.array(z.unknown()), z.string()]) }).strict();

/**
 * Batches: many tasks over one document. The document is a stored document (POST /v1/documents: stored, cut and
 * encoded once), each item is a job on it (as POST /v1/documents/:id/jobs makes one), and the batch's status, counts
 * and result lines follow its jobs' ends (libs/job-store: Pipeline.endBatchItem, BatchStore).
 */
@Injectable()
export class BatchesService {
  constructor(
    private readonly jobs: JobsService,
    private readonly lifecycle: LifecycleService,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(STORE) private readonly store: JobStore,
    @Inject(PIPELINE) private readonly pipeline: Pipeline,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /**
   * An Idempotency-Key makes a retry safe as for jobs: the same key and body answer the batch the first request made
   * (`replayed`), another body is CONFLICT.
   */
  async create(tenant: string, body: ParsedBody, idempotencyKey: string | undefined, traceparent?: string): Promise<{ batch: BatchRecord; replayed: boolean }> {
    const request = parseWith(BatchRequest, body.fields, 'request');
    const items = this.parseItems(request.items);
    await this.jobs.checkWebhook(request.webhook);
    const given = [body.file !== null, request.text !== undefined, request.documentId !== undefined].filter(Boolean).length;
    if (given !== 1) throw new AppError('INPUT_INVALID', 'give the batch one document: "text", "documentId", or a multipart "file"');
    // Every item is an unfinished job until it ends: the batch must fit the tenant's cap as a whole.
    if (items.length > this.config.maxQueuedJobsPerTenant) {
      throw new AppError('INPUT_INVALID', `the batch has ${items.length} items; a tenant may have at most ${this.config.maxQueuedJobsPerTenant} unfinished jobs (MAX_QUEUED_JOBS_PER_TENANT)`);
    }
    const active = await this.redis.scard(this.store.activeKey(tenant));
    if (active + items.length > this.config.maxQueuedJobsPerTenant) {
      throw new AppError('RATE_LIMITED', `${active} jobs are unfinished; ${items.length} more would pass the limit of ${this.config.maxQueuedJobsPerTenant}`, { retryAfterSeconds: 10 });
    }

    let id = newBatchId();
    if (idempotencyKey !== undefined) {
      const document = body.file ? { file: sha256(body.file.bytes) } : request.text !== undefined ? { text: sha256(request.text) } : { documentId: request.documentId };
      const fingerprint = sha256(JSON.stringify({ batch: true, document, items, webhook: request.webhook ?? null, metadata: request.metadata ?? {} }));
      const claim = await this.jobs.claimIdempotencyKey(tenant, idempotencyKey, fingerprint, id);
      if (!claim.created) {
        const existing = await this.pipeline.batches.get(claim.jobId);
        if (!existing) throw new AppError('CONFLICT', 'a request with this Idempotency-Key is still being created; retry shortly');
        return { batch: await this.get(tenant, existing.id), replayed: true };
      }
      id = claim.jobId;
    }
    try {
      return { batch: await this.createBatch(tenant, id, body, request, items, traceparent), replayed: false };
    } catch (err) {
      if (idempotencyKey !== undefined) await this.store.releaseIdempotencyKey(tenant, idempotencyKey).catch(() => undefined);
      throw err;
    }
  }

  private async createBatch(
    tenant: string,
    id: string,
    body: ParsedBody,
    request: z.output<typeof BatchRequest>,
    items: ReturnType<BatchesService['parseItems']>,
    traceparent: string | undefined,
  ): Promise<BatchRecord> {
    const doc: DocumentRecord =
      request.documentId !== undefined
        ? await this.jobs.getDocument(tenant, request.documentId)
        : await this.jobs.createDocument(tenant, { fields: request.text !== undefined ? { text: request.text } : {}, file: body.file }, traceparent);
    const planned = items.map((item) => ({ ...item, jobId: newId('job'), metadata: { batchId: id, custom_id: item.custom_id } }));
    let batch: BatchRecord | undefined;
    const created = request.documentId === undefined;
    try {
      await this.jobs.createDocumentJobs(
        tenant,
        doc,
        planned,
        (index, err) => itemError(err.code, index, items[index]!.custom_id, err.message, err.details),
        traceparent,
        // Every item fits the window: the batch is stored, then its jobs are queued (an item job's end finds its batch).
        async () => {
          batch = await this.pipeline.batches.create(
            { id, tenant, documentId: doc.id, webhook: request.webhook ?? null, metadata: request.metadata ?? {} },
            planned.map((p) => ({ customId: p.custom_id, jobId: p.jobId })),
          );
        },
      );
    } catch (err) {
      // A refused batch leaves nothing behind: the document it stored for itself goes (a stored one it was asked on stays).
      if (created && !batch) await this.lifecycle.deleteDocument(tenant, doc.id).catch((e: unknown) => this.logger.warn({ documentId: doc.id, err: (e as Error).message }, 'could not delete the document of a refused batch'));
      throw err;
    }
    if (!batch) throw new AppError('INTERNAL', `batch ${id} was not stored (this is a bug)`);
    this.logger.info({ batchId: id, items: items.length, documentId: doc.id }, 'batch queued');
    return batch;
  }

  /** The batch, its counts brought up to its jobs (see Pipeline.refreshBatch) while it has not ended. */
  async get(tenant: string, id: string): Promise<BatchRecord> {
    let batch = BATCH_ID_PATTERN.test(id) ? await this.pipeline.batches.get(id) : null;
    if (!batch || batch.tenant !== tenant) throw new AppError('NOT_FOUND', `no batch ${JSON.stringify(id.slice(0, 64))}`);
    if (batch.status === 'in_progress' || batch.status === 'cancelling') {
      await this.pipeline.refreshBatch(id);
      batch = (await this.pipeline.batches.get(id)) ?? batch;
    }
    return batch;
  }

  /** A page of the tenant's batches, newest first (their counts as last stored: GET /v1/batches/:id refreshes them). */
  async list(tenant: string, limit: number, after?: string) {
    return this.pipeline.batches.list(tenant, limit, after);
  }

  /** The result lines from `offset` on (JSON texts, in the order the items ended). */
  async results(tenant: string, id: string, offset: number): Promise<string[]> {
    await this.get(tenant, id);
    return this.pipeline.batches.results(id, offset);
  }

  /** Cancels the items that have not ended; those that have keep their results. */
  async cancel(tenant: string, id: string): Promise<BatchRecord> {
    const batch = await this.get(tenant, id);
    if (batch.status === 'completed' || batch.status === 'cancelled') throw new AppError('CONFLICT', `batch ${id} has already ended (${batch.status})`);
    await this.pipeline.batches.requestCancel(id);
    // Each cancel is a job's own (its end is counted for the batch like any other); one that ended meanwhile is left.
    const open = (await this.pipeline.batches.pending(id)).filter((item) => item.jobStatus !== null && !this.store.isTerminal(item.jobStatus as JobStatus));
    await mapLimit(open, 16, (item) => this.pipeline.cancel(item.jobId));
    return this.get(tenant, id);
  }

  /**
   * The items, each checked as a job's task is (the schema, then this deployment's limits), with their custom_ids
   * unique: every refusal names the item (its index and custom_id). At most BATCH_MAX_ITEMS, counted before any is
   * parsed.
   */
  private parseItems(raw: unknown[] | string): (z.output<typeof BatchItem> & ReturnType<JobsService['checkTask']>)[] {
    const lines = typeof raw === 'string' ? raw.split(/\r?\n/).filter((l) => l.trim() !== '') : null;
    const count = lines?.length ?? (raw as unknown[]).length;
    if (count === 0) throw new AppError('INPUT_INVALID', 'a batch needs at least one item');
    if (count > this.config.batchMaxItems) {
      throw new AppError('INPUT_INVALID', `a batch holds at most ${this.config.batchMaxItems} items (BATCH_MAX_ITEMS); this one has ${count}`, { items: count, limit: this.config.batchMaxItems });
    }
    const seen = new Map<string, number>();
    const out: (z.output<typeof BatchItem> & ReturnType<JobsService['checkTask']>)[] = [];
    for (let i = 0; i < count; i++) {
      let value: unknown;
      if (lines) {
        try {
          value = parseJsonBody(Buffer.from(lines[i]!, 'utf8'));
        } catch (err) {
          const e = err instanceof AppError ? err : new AppError('INPUT_INVALID', String(err));
          throw itemError(e.code, i, undefined, `line ${i + 1} of items is not a JSON object: ${e.message}`);
        }
      } else {
        value = (raw as unknown[])[i];
      }
      const customId = typeof value === 'object' && value !== null && typeof (value as { custom_id?: unknown }).custom_id === 'string' ? (value as { custom_id: string }).custom_id : undefined;
      const parsed = BatchItem.safeParse(value);
      if (!parsed.success) {
        throw itemError('INPUT_INVALID', i, customId, parsed.error.issues.map((issue) => `${issue.path.join('.') || '(item)'}: ${issue.message}`).join('; '));
      }
      const first = seen.get(parsed.data.custom_id);
      if (first !== undefined) throw itemError('INPUT_INVALID', i, parsed.data.custom_id, `repeats the custom_id of items[${first}]; custom_ids must be unique in a batch`);
      seen.set(parsed.data.custom_id, i);
      let checked: ReturnType<JobsService['checkTask']>;
      try {
        checked = this.jobs.checkTask(parsed.data);
      } catch (err) {
        if (!(err instanceof AppError)) throw err;
        throw itemError(err.code, i, parsed.data.custom_id, err.message, err.details);
      }
      out.push({ ...parsed.data, ...checked });
    }
    return out;
  }
}

/** A refusal of one item: its code kept, the item named by index and custom_id in the message and the details. */
function itemError(code: AppError['code'], index: number, customId: string | undefined, message: string, details?: Record<string, unknown>): AppError {
  const name = `items[${index}]${customId === undefined ? '' : ` (custom_id ${JSON.stringify(customId.slice(0, 128))})`}`;
  return new AppError(code, `${name}: ${message}`, { ...details, index, ...(customId === undefined ? {} : { custom_id: customId }) });
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}
