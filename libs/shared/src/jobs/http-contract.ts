import { z } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../errors.js';
import { TaskType } from '../model-contract.js';
import { EXPANSION_LIMITS, Evidence, GenerationParams, Task } from '../task.js';
import { DOCUMENT_STATUSES, JOB_STATUSES, Metadata, WebhookSpec, type JobProgress, type JobStatus } from './job-record.js';
import type { PublicDocument, PublicJob } from './public-view.js';
import type { toPublicBatch } from './public-view.js';

/*
 * The HTTP and webhook contract: what the API accepts and answers, defined once. The API validates requests with
 * these schemas and builds its responses with these shapes; libs/client imports the same types.
 */

/** Fields of a job request besides the document. Unknown fields are refused, so a typo never passes silently. */
export const JobOptions = z
  .object({
    task: Task,
    generation: GenerationParams.partial().strict().optional(),
    webhook: WebhookSpec.strict().optional(),
    metadata: Metadata.optional(),
  })
  .strict();

/** The job options as a client writes them (defaults not yet filled in). */
export type JobOptionsInput = z.input<typeof JobOptions>;

/** POST /v1/jobs with a JSON body. */
export const CreateJobJson = JobOptions.extend({ text: z.string() }).strict();

/** POST /v1/documents with a JSON body. */
export const CreateDocumentJson = z.object({ text: z.string(), metadata: Metadata.optional() }).strict();

export const ListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    after: z.string().max(200).optional(),
  })
  .strict();

/** GET /v1/jobs: a page of jobs, newest first. */
export interface JobListPage {
  object: 'list';
  data: PublicJob[];
  nextCursor: string | null;
  hasMore: boolean;
}

export function jobListPage(data: PublicJob[], nextCursor: string | null): JobListPage {
  return { object: 'list', data, nextCursor, hasMore: nextCursor !== null };
}

/** GET /v1/documents: a page of documents, newest first (paged as GET /v1/jobs). */
export interface DocumentListPage {
  object: 'list';
  data: PublicDocument[];
  nextCursor: string | null;
  hasMore: boolean;
}

export function documentListPage(data: PublicDocument[], nextCursor: string | null): DocumentListPage {
  return { object: 'list', data, nextCursor, hasMore: nextCursor !== null };
}

/**
 * A server-sent event of GET /v1/jobs/:id/events, as a client sees it. `status` carries the whole job when the server
 * sends a snapshot (the first event and the terminal one, result included); between them it carries only the status.
 * The SSE `event` field is the type, `data` the JSON, and `id` a STREAM_EVENT_ID a client resumes after.
 */
/**
 * The id of every job event (`<ms>-<seq>`, a Redis stream id; `0-0` is before the first), sent back as Last-Event-ID
 * (or `?lastEventId=`) to resume after it.
 */
export const STREAM_EVENT_ID = /^\d{1,20}-\d{1,20}$/;

export type JobStreamEvent =
  | { type: 'status'; status: JobStatus; job: PublicJob | null; error?: { code: ErrorCode; message: string } }
  | { type: 'progress'; progress: JobProgress }
  | { type: 'text'; delta: string };

/** The body of a job's webhook: the event type, when it was sent, and the job as GET /v1/jobs/:id shows it. */
export interface WebhookBody {
  type: `job.${JobStatus}`;
  timestamp: string;
  data: PublicJob;
}

export function webhookBody(job: PublicJob, now: Date = new Date()): WebhookBody {
  return { type: `job.${job.status}`, timestamp: now.toISOString(), data: job };
}

const Count = z.number().int().nonnegative();
const Ms = z.number().nonnegative();
const Time = z.string().datetime();

export const UsageSchema = z
  .object({
    chars: Count,
    chunks: Count,
    encoderTokens: Count,
    softTokens: Count,
    promptTokens: Count,
    generatedTokens: Count,
    expansionRequested: Count,
    expandedChunks: Count,
    expandedTokens: Count,
    expansionLimitedBy: z.enum(EXPANSION_LIMITS).optional(),
  })
  .strict();

export const TimingsSchema = z
  .object({ chunkMs: Ms, encodeMs: Ms, adapterMs: Ms, scoringMs: Ms, expandMs: Ms, prefillMs: Ms, decodeMs: Ms, totalMs: Ms, queueMs: Ms })
  .strict();

export const JobResultSchema = z
  .object({
    text: z.string(),
    finishReason: z.enum(['eos', 'stop', 'length']),
    usage: UsageSchema,
    timings: TimingsSchema,
    /** The chunks the answer rests on, best first. */
    evidence: z.array(Evidence.strict()),
  })
  .strict();

/** A job as GET /v1/jobs/:id, the list, the SSE snapshots and the webhook body show it. */
export const PublicJobSchema = z
  .object({
    object: z.literal('job'),
    id: z.string(),
    status: z.enum(JOB_STATUSES),
    task: Task,
    generation: GenerationParams,
    webhook: WebhookSpec.nullable(),
    metadata: Metadata,
    documentId: z.string().nullable(),
    chars: Count,
    progress: z.object({ chunksTotal: Count, chunksEncoded: Count, chunksCached: Count }).strict(),
    createdAt: Time,
    startedAt: Time.nullable(),
    finishedAt: Time.nullable(),
    expiresAt: Time,
    result: JobResultSchema.nullable(),
    error: z.object({ code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]), message: z.string() }).strict().nullable(),
  })
  .strict();

export const JobListPageSchema = z
  .object({ object: z.literal('list'), data: z.array(PublicJobSchema), nextCursor: z.string().nullable(), hasMore: z.boolean() })
  .strict();

/** A stored document as POST /v1/documents, GET /v1/documents/:id and the list show it. */
export const PublicDocumentSchema = z
  .object({
    object: z.literal('document'),
    id: z.string(),
    /** encoding, then ready (asked with POST /v1/documents/:id/jobs) or failed. */
    status: z.enum(DOCUMENT_STATUSES),
    chars: Count,
    /** Soft tokens: one per chunk. */
    chunks: Count,
    metadata: Metadata,
    createdAt: Time,
    readyAt: Time.nullable(),
    /** When the retention sweep deletes it (RETENTION_SECONDS after it was encoded or its last job ended). */
    expiresAt: Time,
    error: z.object({ code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]), message: z.string() }).strict().nullable(),
  })
  .strict();

export const DocumentListPageSchema = z
  .object({ object: z.literal('list'), data: z.array(PublicDocumentSchema), nextCursor: z.string().nullable(), hasMore: z.boolean() })
  .strict();

/** DELETE /v1/jobs/:id and DELETE /v1/documents/:id: what was deleted. */
export const DeletedSchema = z
  .object({
    object: z.enum(['job', 'document']),
    id: z.string(),
    deleted: z.literal(true),
    /** A document's delete also deletes the jobs asked on it (their results quote it): their ids. */
    jobs: z.array(z.string()),
  })
  .strict();
export type Deleted = z.output<typeof DeletedSchema>;

/** POST /admin/tenants/:tenant/purge: what the tenant-wide purge deleted. */
export const TenantPurgeSchema = z
  .object({
    object: z.literal('tenant.purge'),
    tenant: z.string(),
    jobs: Count,
    documents: Count,
    /** Blobs deleted, soft prompts nobody references any more included. */
    blobs: Count,
  })
  .strict();
export type TenantPurge = z.output<typeof TenantPurgeSchema>;

/** One model package as GET /v1/models lists it: what the API serves, and what its answers can be expected to cover. */
export const PublicModelSchema = z
  .object({
    object: z.literal('model'),
    /** The package's name (manifest `name`). */
    id: z.string(),
    version: z.string(),
    /** Digest of what determines a chunk's soft prompt; soft prompts are stored and reused under it. */
    encoderId: z.string(),
    /** The decoder's window in tokens: soft tokens, expanded chunks, prompt and answer together. */
    window: Count,
    /** Characters per chunk (one soft token each). */
    chunkChars: Count,
    /** Languages the model was trained on (BCP 47), as its manifest declares; other languages get no useful answer. */
    languages: z.array(z.string()),
    /** The task types it answers (POST /v1/jobs `task.type`). */
    tasks: z.array(TaskType),
  })
  .strict();
export type PublicModel = z.output<typeof PublicModelSchema>;

/** GET /v1/models. */
export const ModelListSchema = z.object({ object: z.literal('list'), data: z.array(PublicModelSchema) }).strict();
export type ModelList = z.output<typeof ModelListSchema>;

// The schemas and the types the code builds responses with must describe the same thing (checked by tsc).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const publicJobMatches: Same<z.output<typeof PublicJobSchema>, PublicJob> = true;
void publicJobMatches;
const publicDocumentMatches: Same<z.output<typeof PublicDocumentSchema>, PublicDocument> = true;
void publicDocumentMatches;

// --- Batches: many tasks over one document ------------------------------------------------------------------------

/**
 * One item of a batch: a task over the batch's document, with its own generation settings. `custom_id` is the
 * caller's name for the item (snake_case as in OpenAI's and Anthropic's batch files, so existing files carry over);
 * unique within the batch, it comes back on the item's result line.
 */
export const BatchItem = z
  .object({
    custom_id: z
      .string()
      .min(1)
      .max(128)
      .regex(/^[^\p{Cc}]+$/u, 'custom_id must hold no control characters'),
    task: Task,
    generation: GenerationParams.partial().strict().optional(),
  })
  .strict();
export type BatchItem = z.input<typeof BatchItem>;

/** Fields of a batch besides its document and items: one webhook when the batch ends, and the caller's metadata. */
export const BatchOptions = z.object({ webhook: WebhookSpec.strict().optional(), metadata: Metadata.optional() }).strict();

/**
 * POST /v1/batches with a JSON body: the document as `text` or as a stored `documentId` (one of them), and the items,
 * as an array or as JSONL text (one item a line; a string is not counted against the body's bound on JSON values).
 * (multipart/form-data: the document as `file` or a `documentId` field, and `items` as JSONL text.)
 */
export const CreateBatchJson = BatchOptions.extend({
  text: z.string().optional(),
  documentId: z.string().max(200).optional(),
  items: z.union([z.array(BatchItem), z.string().describe('JSONL: one BatchItem a line')]),
}).strict();

/** POST /v1/batches as multipart/form-data: fields besides the `file`. */
export const CreateBatchForm = BatchOptions.extend({
  /** JSONL: one BatchItem a line (blank lines are skipped). */
  items: z.string(),
  documentId: z.string().max(200).optional(),
}).strict();

/**
 * The state of a batch: `in_progress` while any item has not ended, `cancelling` after a cancel until the items in
 * flight have ended, then `completed` (every item ended, whatever each item's outcome) or `cancelled`.
 */
export const BATCH_STATUSES = ['in_progress', 'cancelling', 'completed', 'cancelled'] as const;
export type BatchStatus = (typeof BATCH_STATUSES)[number];

/**
 * How an item ended: its job's terminal status, or `expired` when its job's record was gone (expired or deleted)
 * before the job ended.
 */
export const BATCH_ITEM_STATUSES = ['succeeded', 'failed', 'cancelled', 'expired'] as const;
export type BatchItemStatus = (typeof BATCH_ITEM_STATUSES)[number];

const BatchItemErrorSchema = z.object({ code: z.enum(Object.keys(ERROR_CODES) as [ErrorCode, ...ErrorCode[]]), message: z.string() }).strict();

/** A batch as GET /v1/batches/:id and the batch webhook show it. */
export const PublicBatchSchema = z
  .object({
    object: z.literal('batch'),
    id: z.string(),
    status: z.enum(BATCH_STATUSES),
    /** The stored document every item is asked on (encoded once; POST /v1/documents/:id/jobs asks it again). */
    documentId: z.string(),
    webhook: WebhookSpec.nullable(),
    metadata: Metadata,
    /** Items by outcome; `pending` have not ended. total = pending + succeeded + failed + cancelled + expired. */
    counts: z.object({ total: Count, pending: Count, succeeded: Count, failed: Count, cancelled: Count, expired: Count }).strict(),
    createdAt: Time,
    cancelRequestedAt: Time.nullable(),
    finishedAt: Time.nullable(),
    /** Until when the batch and its result lines are kept. */
    expiresAt: Time,
  })
  .strict();
export type PublicBatch = z.output<typeof PublicBatchSchema>;

/** GET /v1/batches: a page of the tenant's batches, newest first (paged as GET /v1/jobs). */
export const BatchListPageSchema = z
  .object({ object: z.literal('list'), data: z.array(PublicBatchSchema), nextCursor: z.string().nullable(), hasMore: z.boolean() })
  .strict();
export type BatchListPage = z.output<typeof BatchListPageSchema>;

export function batchListPage(data: PublicBatch[], nextCursor: string | null): BatchListPage {
  return { object: 'list', data, nextCursor, hasMore: nextCursor !== null };
}

/**
 * One line of GET /v1/batches/:id/results (JSONL): an item that has ended. Lines come in the order items end; `index`
 * is the item's place in the request. `result` is set for `succeeded`, `error` otherwise; `jobId` is the item's job
 * (GET /v1/jobs/:id, while it is kept).
 */
export const BatchResultLineSchema = z
  .object({
    custom_id: z.string(),
    index: Count,
    status: z.enum(BATCH_ITEM_STATUSES),
    jobId: z.string(),
    result: JobResultSchema.nullable(),
    error: BatchItemErrorSchema.nullable(),
  })
  .strict();
export type BatchResultLine = z.output<typeof BatchResultLineSchema>;

/** The body of a batch's one webhook, sent when its last item ends. */
export interface BatchWebhookBody {
  type: `batch.${Extract<BatchStatus, 'completed' | 'cancelled'>}`;
  timestamp: string;
  data: PublicBatch;
}

export function batchWebhookBody(batch: PublicBatch, now: Date = new Date()): BatchWebhookBody {
  if (batch.status !== 'completed' && batch.status !== 'cancelled') throw new Error(`batch ${batch.id} has not ended (${batch.status}): no webhook yet (this is a bug)`);
  return { type: `batch.${batch.status}`, timestamp: now.toISOString(), data: batch };
}

const publicBatchMatches: Same<z.output<typeof PublicBatchSchema>, ReturnType<typeof toPublicBatch>> = true;
void publicBatchMatches;
