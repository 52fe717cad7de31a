import { z } from 'zod';
import type { ErrorCode } from '../errors.js';
import { GenerationParams, Task } from '../task.js';
import { Metadata, WebhookSpec, type JobProgress, type JobStatus } from './job-record.js';
import type { PublicJob } from './public-view.js';

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

/**
 * A server-sent event of GET /v1/jobs/:id/events, as a client sees it. `status` carries the whole job when the server
 * sends a snapshot (the first event and the terminal one, result included); between them it carries only the status.
 */
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
