import { readFile } from 'node:fs/promises';
import type { Worker } from 'bullmq';
import { pino, type Logger } from 'pino';
import { createBlobStore, type BlobStore } from '@lib/blob-store';
import { createQueueWorker, handle, setBuildInfo, startWorkerProcess, TRACER } from '@lib/job-store';
import { E2llmModel } from '@lib/model-runtime';
import { EncodeChunks, QueueName, type Config } from '@lib/shared';
import { EncodeProcessor } from './encode.processor.js';

export interface EncoderWorkerHandle {
  worker: Worker;
  close(): Promise<void>;
}

/**
 * Starts an encoder worker: loads and warms up the encoder, then takes encode jobs. close() waits for the jobs in
 * hand (BullMQ's worker.close), then releases the sessions: SIGTERM drains instead of dropping work.
 */
export async function startEncoderWorker(config: Config, deps: { logger?: Logger; blobs?: BlobStore } = {}): Promise<EncoderWorkerHandle> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { app: 'encoder-worker' } });
  const model = await E2llmModel.load(config, { encoder: true });
  // e2llm_build_info on this process's /metrics (METRICS_PORT when scaled out): which build serves which package.
  const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  setBuildInfo({ version, model: model.pkg.manifest.name, modelVersion: model.pkg.manifest.version });
  const blobs = deps.blobs ?? createBlobStore(config);
  const proc = await startWorkerProcess(
    config,
    logger,
    ({ redis, store, pipeline }) => {
      const processor = new EncodeProcessor(model, blobs, store, config);
      return [
        createQueueWorker({
          queue: QueueName.Encode,
          handlers: [handle(EncodeChunks, processor.encodeChunks)],
          connection: redis,
          prefix: config.redisPrefix,
          concurrency: config.encoderConcurrency,
          tracer: TRACER.encoder,
          lockDurationMs: config.workerLockMs,
          stalledIntervalMs: config.workerStalledIntervalMs,
          logger,
          onFinalFailure: async (job, error) => {
            const owner = (job.data as { owner?: { kind: string; id: string } }).owner;
            if (owner?.kind === 'job') await pipeline.finishJob(owner.id, 'failed', { error });
            if (owner?.kind === 'document') await pipeline.documentEnded(owner.id, 'failed', error);
          },
        }),
      ];
    },
    async () => {
      await model.release();
      await blobs.close?.();
    },
  );
  logger.info({ encoderId: model.encoderId, concurrency: config.encoderConcurrency }, 'encoder worker ready');
  return { worker: proc.workers[0]!, close: proc.close };
}
