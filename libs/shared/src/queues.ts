import type { z } from 'zod';

/** Queue names: one BullMQ queue each; one processor per queue dispatching on job name. */
export const QueueName = {
  /** Encode children: a batch of chunk references each. */
  Encode: 'encode',
  /** Decode parents: gather soft prompts, generate. Also the parent that marks a stored document encoded. */
  Decode: 'decode',
  /** Signed webhook deliveries. */
  Webhook: 'webhook',
} as const;
export type QueueName = (typeof QueueName)[keyof typeof QueueName];

export interface RetryPolicy {
  attempts: number;
  backoff: { type: 'exponential'; delay: number };
}

/** One job kind: its queue, name, payload schema (versioned), result schema, deterministic id and retry defaults. */
export interface JobDefinition<P extends z.ZodType, R extends z.ZodType> {
  queue: QueueName;
  name: string;
  version: number;
  payload: P;
  result: R;
  jobId: (payload: z.output<P>) => string;
  retry: RetryPolicy;
}

export function defineJob<P extends z.ZodType, R extends z.ZodType>(def: JobDefinition<P, R>): JobDefinition<P, R> {
  return def;
}

/** Retention beside the queue names: finished jobs are kept for inspection, bounded in age and count. */
export const RETENTION = {
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 10_000 },
} as const;

/** BullMQ job ids may not contain ':'; ours join server-generated ids with '_'. */
export const JOB_ID_SEPARATOR = '_';
