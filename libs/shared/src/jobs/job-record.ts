import { z } from 'zod';
import type { ErrorCode } from '../errors.js';
import { GenerationParams, Task, type Evidence, type FinishReason, type Timings, type Usage } from '../task.js';

/** The closed set of job states. */
export const JOB_STATUSES = ['queued', 'encoding', 'decoding', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export const DOCUMENT_STATUSES = ['encoding', 'ready', 'failed'] as const;
export type DocumentStatus = (typeof DOCUMENT_STATUSES)[number];

export const WebhookSpec = z.object({ url: z.string().min(1).max(2048) });
export type WebhookSpec = z.infer<typeof WebhookSpec>;

export const Metadata = z
  .record(z.string().min(1).max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, 'at most 16 metadata keys');
export type Metadata = z.infer<typeof Metadata>;

export interface JobProgress {
  chunksTotal: number;
  chunksEncoded: number;
  chunksCached: number;
}

export interface JobResult {
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  timings: Timings & { queueMs: number };
  /** The chunks the answer rests on, best first. */
  evidence: Evidence[];
}

/** A job as stored and as the API shows it (tenant and internal keys are not shown). */
export interface JobRecord {
  id: string;
  tenant: string;
  status: JobStatus;
  task: Task;
  generation: GenerationParams;
  webhook: WebhookSpec | null;
  metadata: Metadata;
  documentId: string | null;
  sourceKey: string;
  chars: number;
  /** Time the API spent cutting the document into chunks. */
  chunkMs: number;
  progress: JobProgress;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  expiresAt: string;
  result: JobResult | null;
  error: { code: ErrorCode; message: string } | null;
}

export interface DocumentRecord {
  id: string;
  tenant: string;
  status: DocumentStatus;
  sourceKey: string;
  chars: number;
  chunks: number;
  metadata: Metadata;
  createdAt: string;
  readyAt: string | null;
  expiresAt: string;
  error: { code: ErrorCode; message: string } | null;
}

/** Events published while a job runs, streamed to clients as server-sent events. */
export type JobEvent =
  | { type: 'status'; status: JobStatus; error?: { code: ErrorCode; message: string } }
  | { type: 'progress'; progress: JobProgress }
  | { type: 'text'; delta: string };

export { GenerationParams, Task };

/**
 * A batch as stored: many jobs (its items) on one stored document. Its status and counts follow its items' jobs as
 * they end (libs/job-store BatchStore); the item -> job mapping and the result lines are stored beside it.
 */
export interface BatchRecord {
  id: string;
  tenant: string;
  status: 'in_progress' | 'cancelling' | 'completed' | 'cancelled';
  documentId: string;
  webhook: WebhookSpec | null;
  metadata: Metadata;
  total: number;
  /** Items ended, by outcome. */
  ended: { succeeded: number; failed: number; cancelled: number; expired: number };
  createdAt: string;
  cancelRequestedAt: string | null;
  finishedAt: string | null;
  expiresAt: string;
}
