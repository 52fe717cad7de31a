import { readFile } from 'node:fs/promises';
import type { Worker } from 'bullmq';
import { pino, type Logger } from 'pino';
import { createBlobStore, type BlobStore } from '@lib/blob-store';
import { createQueueWorker, handle, setBuildInfo, startWorkerProcess, TRACER } from '@lib/job-store';
import { E2llmModel } from '@lib/model-runtime';
import { DecodeJob, DeliverBatchWebhook, DeliverWebhook, IndexDocument, QueueName, type Config } from '@lib/shared';
import { DecodeProcessor } from './decode.processor.js';
import { WebhookProcessor } from './webhook.processor.js';

export interface DecoderWorkerHandle {
  workers: Worker[];
  close(): Promise<void>;
}

/**
 * Starts a decoder worker (decode parents and document indexing) and the webhook sender. The adapter and decoder
 * load and warm up before any job is taken; close() lets the jobs in hand finish.
 */
export async function startDecoderWorker(config: Config, deps: { logger?: Logger; blobs?: BlobStore } = {}): Promise<DecoderWorkerHandle> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { app: 'decoder-worker' } });
  const model = await E2llmModel.load(config, { decoder: true });
  // e2llm_build_info on this process's /metrics (METRICS_PORT when scaled out): which build serves which package.
  const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  setBuildInfo({ version, model: model.pkg.manifest.name, modelVersion: model.pkg.manifest.version });
  const blobs = deps.blobs ?? createBlobStore(config);
  let decode: DecodeProcessor | undefined;
  const proc = await startWorkerProcess(
    config,
    logger,
    ({ redis, store, pipeline }) => {
      decode = new DecodeProcessor(model, blobs, store, pipeline, config, () => E2llmModel.load(config, { encoder: true }));
      const webhooks = new WebhookProcessor(store, config, pipeline.batches);
      const common = { connection: redis, prefix: config.redisPrefix, logger, tracer: TRACER.decoder, stalledIntervalMs: config.workerStalledIntervalMs };
      return [
        createQueueWorker({
          ...common,
          queue: QueueName.Decode,
          handlers: [handle(DecodeJob, decode.decodeJob), handle(IndexDocument, decode.indexDocument)],
          concurrency: config.decoderConcurrency,
          lockDurationMs: config.workerLockMs,
          onFinalFailure: async (job, error) => {
            const data = job.data as { jobId?: string; documentId?: string };
            if (data.jobId) await pipeline.finishJob(data.jobId, 'failed', { error });
            if (data.documentId) await pipeline.documentEnded(data.documentId, 'failed', error);
          },
        }),
        createQueueWorker({
          ...common,
          queue: QueueName.Webhook,
          handlers: [handle(DeliverWebhook, webhooks.deliverWebhook), handle(DeliverBatchWebhook, webhooks.deliverBatchWebhook)],
          concurrency: 8,
          lockDurationMs: Math.max(config.workerLockMs, config.webhookTimeoutMs * 2),
        }),
      ];
    },
    async () => {
      await model.release();
      await decode?.release();
      await blobs.close?.();
    },
  );
  logger.info({ encoderId: model.encoderId, concurrency: config.decoderConcurrency }, 'decoder worker ready');
  return proc;
}
