import { Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { AppError, JOB_DEFINITIONS, type ErrorCode, type JobDefinition, type QueueName } from '@lib/shared';
import { endSpan, SpanKind, startSpan } from '../observability/tracing.js';
import { bullPrefix, describeFailure, parsePayload, toBullError } from './pipeline.js';

/** One job kind's handler: its definition (queue, name, payload schema) and the step that runs the parsed payload. */
export interface JobHandler {
  def: JobDefinition<z.ZodType, z.ZodType>;
  run: (job: Job, log: Logger) => Promise<unknown>;
}

/** Binds a step to its job definition: the host parses the payload with the definition's schema before the step. */
export function handle<P extends z.ZodType, R extends z.ZodType>(
  def: JobDefinition<P, R>,
  step: (data: z.output<P>, job: Job, log: Logger) => Promise<z.input<R>>,
): JobHandler {
  return { def: def as unknown as JobDefinition<z.ZodType, z.ZodType>, run: async (job, log) => step(parsePayload(def, job.data), job, log) };
}

/**
 * Refuses a handler set that does not cover its queue exactly: every job definition of the queue has one handler,
 * none has two, and none belongs to another queue (a job nobody handles would wait forever).
 */
export function checkHandlers(queue: QueueName, handlers: readonly JobHandler[], definitions: readonly { queue: QueueName; name: string }[] = JOB_DEFINITIONS): Map<string, JobHandler> {
  const byName = new Map<string, JobHandler>();
  const problems: string[] = [];
  for (const h of handlers) {
    if (h.def.queue !== queue) problems.push(`${h.def.name} belongs to queue ${h.def.queue}`);
    else if (byName.has(h.def.name)) problems.push(`${h.def.name} has two handlers`);
    else byName.set(h.def.name, h);
  }
  for (const d of definitions) if (d.queue === queue && !byName.has(d.name)) problems.push(`${d.name} has no handler`);
  if (problems.length > 0) throw new AppError('CONFIG_INVALID', `the ${queue} worker's handlers do not match its job definitions: ${problems.join('; ')}`);
  return byName;
}

export interface QueueWorkerOptions {
  queue: QueueName;
  /** Exactly one handler per job definition of this queue (checked when the worker is created). */
  handlers: readonly JobHandler[];
  connection: Redis;
  prefix: string;
  concurrency: number;
  /**
   * The job's lock, renewed by the worker while the job runs (inference runs off the event loop, so renewal keeps
   * going); when a worker dies the lock lapses and the stalled-job check hands the job to another worker.
   */
  lockDurationMs: number;
  stalledIntervalMs: number;
  logger: Logger;
  /** Tracer name of the app, so each app's spans are told apart within one trace. */
  tracer: string;
  /** Called once when a job has failed for good (retries spent, unrecoverable, or stalled too often). */
  onFinalFailure?: (job: Job, error: { code: ErrorCode; message: string }) => Promise<void>;
}

/**
 * One BullMQ worker for one queue: dispatch on job name, a child logger per job with its start and duration, and
 * errors rethrown so BullMQ records the failure (retryable ones back off; the rest are unrecoverable). The worker is
 * created paused: the caller runs it only after its model has warmed up.
 */
export function createQueueWorker(o: QueueWorkerOptions): Worker {
  const handlers = checkHandlers(o.queue, o.handlers);
  const worker = new Worker(
    o.queue,
    async (job) => {
      const handler = handlers.get(job.name);
      if (!handler) throw toBullError(new Error(`no handler for job ${job.name} on queue ${o.queue} (this is a bug)`));
      const data = (job.data ?? {}) as { traceparent?: string; tenant?: string; jobId?: string; owner?: { id: string } };
      const span = startSpan(o.tracer, job.name, data.traceparent, SpanKind.CONSUMER, { 'messaging.destination.name': o.queue, 'messaging.message.id': job.id ?? '' });
      // Every line of this job's log carries the job, the tenant and the trace.
      const log = o.logger.child({
        queue: o.queue,
        jobName: job.name,
        jobId: job.id,
        requestId: data.jobId ?? data.owner?.id,
        tenant: data.tenant,
        ...(span.isRecording() || data.traceparent ? { traceId: span.spanContext().traceId } : {}),
        attempt: job.attemptsMade + 1,
      });
      const t0 = performance.now();
      log.info('job started');
      try {
        const result = await handler.run(job, log);
        log.info({ ms: Math.round(performance.now() - t0) }, 'job done');
        endSpan(span);
        return result;
      } catch (err) {
        const { error, final } = describeFailure(err, job.attemptsMade, job.opts.attempts ?? 1);
        // A step that stops because its job was cancelled has not failed: one info line, no warning. The job's own
        // end (failed with its code, or cancelled) is logged once by the job store, not once per step.
        if (error.code === 'JOB_CANCELLED') log.info({ ms: Math.round(performance.now() - t0) }, 'step stopped: job cancelled');
        else log.warn({ ms: Math.round(performance.now() - t0), code: error.code, err: error.message, final }, 'step failed');
        endSpan(span, err);
        throw toBullError(err);
      }
    },
    {
      connection: o.connection,
      prefix: bullPrefix(o.prefix),
      concurrency: o.concurrency,
      lockDuration: o.lockDurationMs,
      stalledInterval: o.stalledIntervalMs,
      maxStalledCount: 3,
      autorun: false,
    },
  );
  worker.on('failed', (job, err) => {
    if (!job || !o.onFinalFailure) return;
    void (async () => {
      // 'failed' also fires for attempts that will be retried; only a job left in the failed state has ended.
      if ((await job.getState()) !== 'failed') return;
      const { error } = describeFailure(err, job.attemptsMade, job.opts.attempts ?? 1);
      // Not counted here: a step's final failure ends its job only if the job has not ended yet (the job store
      // counts each job once, when it ends).
      await o.onFinalFailure!(job, error);
    })().catch((e) => o.logger.error({ err: (e as Error).message, jobId: job.id }, 'final-failure handling failed'));
  });
  worker.on('error', (err) => o.logger.error({ queue: o.queue, err: err.message }, 'worker error'));
  return worker;
}
