import type { Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '@lib/shared';
import { jobEndRecorder, serveMetrics } from '../observability/metrics.js';
import { createRedis, Pipeline } from './pipeline.js';
import { JobStore } from '../records/job-store.js';

/** What a worker process's queue workers are built from: one Redis connection, the job records and the pipeline. */
export interface WorkerProcessDeps {
  redis: Redis;
  store: JobStore;
  pipeline: Pipeline;
}

export interface WorkerProcess {
  workers: Worker[];
  /** Drains: waits for the jobs in hand, then closes metrics, queues and Redis, then `release`. Idempotent. */
  close(): Promise<void>;
}

/**
 * The start and drain every worker process shares: connect, build the queue workers (created paused), serve
 * /metrics when METRICS_PORT is set, run the workers, and on close let the jobs in hand finish before anything they
 * use is closed. `release` frees what the caller loaded (model sessions, blob store) after the workers have drained.
 */
export async function startWorkerProcess(
  config: Pick<Config, 'redisUrl' | 'redisPrefix' | 'jobTtlSeconds' | 'retentionSeconds' | 'metricsPort' | 'webhookMaxAttempts' | 'webhookBackoffMs'>,
  logger: Logger,
  build: (deps: WorkerProcessDeps) => Worker[],
  release: () => Promise<void>,
): Promise<WorkerProcess> {
  const redis = createRedis(config.redisUrl);
  const store = new JobStore(redis, config.redisPrefix, config.jobTtlSeconds, jobEndRecorder(logger), config.retentionSeconds);
  const pipeline = new Pipeline(redis, config.redisPrefix, store, { attempts: config.webhookMaxAttempts, backoffMs: config.webhookBackoffMs });
  const workers = build({ redis, store, pipeline });
  const metricsServer = config.metricsPort > 0 ? await serveMetrics(config.metricsPort) : null;
  for (const w of workers) void w.run();
  let closing: Promise<void> | undefined;
  return {
    workers,
    // A second close (SIGTERM during shutdown, a test's cleanup) waits for the first.
    close: () =>
      (closing ??= (async () => {
        await Promise.all(workers.map((w) => w.close()));
        await metricsServer?.close();
        await pipeline.close();
        await release();
        redis.disconnect();
      })().catch((err) => {
        logger.error({ err: (err as Error).message }, 'worker shutdown failed');
        throw err;
      })),
  };
}
