import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { metrics, type BatchStore, type JobStore } from '@lib/job-store';
import { deliverWebhook } from '@lib/webhooks';
import { AppError, DeliverBatchWebhook, DeliverWebhook, batchWebhookBody, toPublicBatch, toPublicJob, webhookBody, type Config, type WebhookSpec } from '@lib/shared';


/** Delivers one signed webhook; the URL and the secret are read at send time, never carried in the payload. */
export class WebhookProcessor {
  constructor(
    private readonly store: JobStore,
    private readonly config: Pick<Config, 'webhookSecret' | 'webhookTimeoutMs' | 'webhookAllowLoopback' | 'webhookAllowPrivate'>,
    private readonly batches?: BatchStore,
  ) {}

  deliverWebhook = async (p: z.output<typeof DeliverWebhook.payload>, _job: Job, log: Logger): Promise<{ status: number }> => {
    const record = await this.store.getJob(p.jobId);
    if (!record?.webhook) throw new AppError('NOT_FOUND', `job ${p.jobId} or its webhook no longer exists`);
    return this.send(record.webhook, p.eventId, webhookBody(toPublicJob(record)), log);
  };

  /** A batch's one webhook, when its last item has ended: the batch as GET /v1/batches/:id shows it. */
  deliverBatchWebhook = async (p: z.output<typeof DeliverBatchWebhook.payload>, _job: Job, log: Logger): Promise<{ status: number }> => {
    const batch = await this.batches?.get(p.batchId);
    if (!batch?.webhook) throw new AppError('NOT_FOUND', `batch ${p.batchId} or its webhook no longer exists`);
    return this.send(batch.webhook, p.eventId, batchWebhookBody(toPublicBatch(batch)), log);
  };

  private send = async (webhook: WebhookSpec, messageId: string, payload: unknown, log: Logger): Promise<{ status: number }> => {
    if (!this.config.webhookSecret) throw new AppError('CONFIG_INVALID', 'WEBHOOK_SECRET is not set');
    const outcome = await deliverWebhook({
      url: webhook.url,
      secret: this.config.webhookSecret,
      messageId,
      payload,
      timeoutMs: this.config.webhookTimeoutMs,
      policy: { allowLoopback: this.config.webhookAllowLoopback, allowPrivate: this.config.webhookAllowPrivate },
    }).catch((err: unknown) => {
      metrics.webhookAttempts.inc({ outcome: err instanceof AppError && err.code === 'WEBHOOK_URL_FORBIDDEN' ? 'refused' : 'failed' });
      throw err;
    });
    metrics.webhookAttempts.inc({ outcome: 'delivered' });
    metrics.stageSeconds.observe({ stage: 'webhook' }, outcome.durationMs / 1000);
    log.info({ status: outcome.status, ms: Math.round(outcome.durationMs) }, 'webhook delivered');
    return { status: outcome.status };
  };
}
