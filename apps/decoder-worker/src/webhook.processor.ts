import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { metrics, type JobStore } from '@lib/job-store';
import { deliverWebhook } from '@lib/webhooks';
import { AppError, DeliverWebhook, toPublicJob, webhookBody, type Config } from '@lib/shared';


/** Delivers one signed webhook; the URL and the secret are read at send time, never carried in the payload. */
export class WebhookProcessor {
  constructor(
    private readonly store: JobStore,
    private readonly config: Pick<Config, 'webhookSecret' | 'webhookTimeoutMs' | 'webhookAllowLoopback' | 'webhookAllowPrivate'>,
  ) {}

  deliverWebhook = async (p: z.output<typeof DeliverWebhook.payload>, job: Job, log: Logger): Promise<{ status: number }> => {
    const record = await this.store.getJob(p.jobId);
    if (!record?.webhook) throw new AppError('NOT_FOUND', `job ${p.jobId} or its webhook no longer exists`);
    if (!this.config.webhookSecret) throw new AppError('CONFIG_INVALID', 'WEBHOOK_SECRET is not set');
    const outcome = await deliverWebhook({
      url: record.webhook.url,
      secret: this.config.webhookSecret,
      messageId: p.eventId,
      payload: webhookBody(toPublicJob(record)),
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
