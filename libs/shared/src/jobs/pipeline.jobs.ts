import { z } from 'zod';
import { defineJob, JOB_ID_SEPARATOR, QueueName } from '../queues.js';

const Id = z.string().regex(/^[A-Za-z0-9_-]{1,128}$/);

/** W3C trace context of the request that made the job, so one trace spans API, encoder and decoder. */
const Traceparent = z.string().regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/).optional();

/** What owns a flow: a job (answer a task) or a stored document (encode once, ask many times). */
export const Owner = z.object({ kind: z.enum(['job', 'document']), id: Id });
export type Owner = z.infer<typeof Owner>;

/**
 * A chunk reference: its place in the document, its UTF-16 offsets in the stored source, and its encoder tokens as
 * the API's planner counted them (CLS included): the encoder encodes exactly this chunk and checks the count.
 */
export const ChunkRef = z.object({
  i: z.number().int().nonnegative(),
  start: z.number().int().nonnegative(),
  end: z.number().int().positive(),
  tokens: z.number().int().positive(),
});
export type ChunkRef = z.infer<typeof ChunkRef>;

/** The most chunk references one encode child carries (the contract's limit; ENCODE_JOB_MAX_CHUNKS is capped by it). */
export const ENCODE_CHILD_MAX_CHUNKS = 4096;

export const EncodeChunks = defineJob({
  queue: QueueName.Encode,
  name: 'encode-chunks',
  version: 1,
  payload: z.object({
    v: z.literal(1),
    owner: Owner,
    tenant: Id,
    /** Blob key of the source text. */
    sourceKey: z.string().min(1).max(512),
    /** This child's place among its siblings: results are gathered in this order. */
    batch: z.number().int().nonnegative(),
    chunks: z.array(ChunkRef).min(1).max(ENCODE_CHILD_MAX_CHUNKS),
    /** Blob key of the chunks' encoder ids as the API measured them (chunk-ids.ts); absent: the worker tokenizes. */
    idsKey: z.string().min(1).max(512).optional(),
    traceparent: Traceparent,
  }),
  result: z.object({
    batch: z.number().int().nonnegative(),
    /** Soft-prompt blob keys, one per chunk reference, in the payload's order. */
    keys: z.array(z.string()),
    /** Each key's chunk index (the API's `i`): children carry chunks out of document order, grouped by length. */
    refs: z.array(z.number().int().nonnegative()),
    /** Each key's chunk as UTF-16 offsets in the source, so a lost or corrupt blob can be encoded again. */
    spans: z.array(z.tuple([z.number().int().nonnegative(), z.number().int().nonnegative()])),
    encoded: z.number().int().nonnegative(),
    cached: z.number().int().nonnegative(),
    encoderTokens: z.number().int().nonnegative(),
    /** Time in the encoder itself, for the job's timings. */
    encodeMs: z.number().nonnegative(),
  }),
  jobId: (p) => [p.owner.id, 'enc', p.batch].join(JOB_ID_SEPARATOR),
  retry: { attempts: 5, backoff: { type: 'exponential', delay: 1000 } },
});

/** A job's decode parent id: what cancel removes, from the job id alone. */
export function decodeJobId(jobId: string): string {
  return [jobId, 'dec'].join(JOB_ID_SEPARATOR);
}

export const DecodeJob = defineJob({
  queue: QueueName.Decode,
  name: 'decode-job',
  version: 1,
  payload: z.object({ v: z.literal(1), jobId: Id, tenant: Id, traceparent: Traceparent }),
  result: z.object({ resultKey: z.string() }),
  jobId: (p) => decodeJobId(p.jobId),
  retry: { attempts: 3, backoff: { type: 'exponential', delay: 2000 } },
});

export const IndexDocument = defineJob({
  queue: QueueName.Decode,
  name: 'index-document',
  version: 1,
  payload: z.object({ v: z.literal(1), documentId: Id, tenant: Id, traceparent: Traceparent }),
  result: z.object({ chunks: z.number().int().nonnegative() }),
  jobId: (p) => [p.documentId, 'idx'].join(JOB_ID_SEPARATOR),
  retry: { attempts: 3, backoff: { type: 'exponential', delay: 2000 } },
});

export const DeliverWebhook = defineJob({
  queue: QueueName.Webhook,
  name: 'deliver-webhook',
  version: 1,
  /** The URL and secret are loaded when sending, never carried in the payload. */
  payload: z.object({ v: z.literal(1), jobId: Id, tenant: Id, eventId: z.string().regex(/^msg_[A-Za-z0-9_-]{1,128}$/) }),
  result: z.object({ status: z.number().int() }),
  jobId: (p) => p.eventId,
  retry: { attempts: 10, backoff: { type: 'exponential', delay: 2000 } },
});

/** A batch's one webhook, sent when its last item ends; delivered as DeliverWebhook is (libs/webhooks). */
export const DeliverBatchWebhook = defineJob({
  queue: QueueName.Webhook,
  name: 'deliver-batch-webhook',
  version: 1,
  /** The URL and secret are loaded when sending, never carried in the payload. */
  payload: z.object({ v: z.literal(1), batchId: Id, tenant: Id, eventId: z.string().regex(/^msg_[A-Za-z0-9_-]{1,128}$/) }),
  result: z.object({ status: z.number().int() }),
  jobId: (p) => p.eventId,
  retry: DeliverWebhook.retry,
});

/** Every job kind of the pipeline: a worker for a queue must handle exactly the ones on that queue. */
export const JOB_DEFINITIONS = [EncodeChunks, DecodeJob, IndexDocument, DeliverWebhook, DeliverBatchWebhook] as const;
