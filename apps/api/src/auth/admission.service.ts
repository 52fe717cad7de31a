import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { JobStore, Pipeline } from '@lib/job-store';
import { AppError, QueueName, type Config } from '@lib/shared';
import { CONFIG, PIPELINE, REDIS, STORE } from '../tokens.js';

/**
 * Admission control before any work is accepted: the service's encode-queue depth (backpressure), then the
 * tenant's request rate and its cap on unfinished jobs. Each refusal is a 429 with Retry-After.
 */
@Injectable()
export class AdmissionService {
  private depth = { value: 0, at: 0 };
  /** Fixed one-minute windows per tenant in Redis (shared by every API replica); a refused request counts too. */
  private readonly rate: RateLimiterRedis;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(PIPELINE) private readonly pipeline: Pipeline,
    @Inject(STORE) private readonly store: JobStore,
  ) {
    this.rate = new RateLimiterRedis({ storeClient: redis, keyPrefix: `${pipeline.prefix}:rate`, points: config.rateLimitPerMinute, duration: 60 });
  }

  async admit(tenant: string): Promise<void> {
    // The depth is read at most once a second: under load, counting on every request would be the load.
    if (Date.now() - this.depth.at > 1000) {
      this.depth = { value: await this.pipeline.queues[QueueName.Encode].getWaitingCount(), at: Date.now() };
    }
    if (this.depth.value > this.config.maxEncodeQueueDepth) {
      throw new AppError('OVERLOADED', `the service is over its queue depth (${this.depth.value} encode jobs waiting); retry later`, { retryAfterSeconds: 5 });
    }
    try {
      await this.rate.consume(tenant);
    } catch (e) {
      // The library rejects with a RateLimiterRes when the window is spent, and with the Redis error otherwise.
      if (!(e instanceof RateLimiterRes)) throw e;
      const retryAfterSeconds = Math.max(1, Math.ceil(e.msBeforeNext / 1000));
      throw new AppError('RATE_LIMITED', `over ${this.config.rateLimitPerMinute} requests a minute`, { retryAfterSeconds });
    }
    const active = await this.redis.scard(this.store.activeKey(tenant));
    if (active >= this.config.maxQueuedJobsPerTenant) {
      throw new AppError('RATE_LIMITED', `${active} jobs are unfinished; the limit is ${this.config.maxQueuedJobsPerTenant}`, { retryAfterSeconds: 10 });
    }
  }
}
