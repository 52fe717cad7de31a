import { randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { JobStore, Pipeline } from '@lib/job-store';
import { AppError, QueueName, type Config } from '@lib/shared';
import { CONFIG, PIPELINE, REDIS, STORE } from '../tokens.js';

/**
 * A job slot held while its request is read and planned (seconds under load): the tenant's unfinished jobs and the
 * slots held are counted together, atomically, so a burst of requests cannot all pass a cap that counts only jobs
 * already created. A slot a crashed API never released lapses after RESERVATION_MS.
 * KEYS: the tenant's unfinished jobs (a set), its held slots (a sorted set by time). ARGV: now, slot id, cap, lapse.
 * Returns -1 when the slot is held, else the count that refused it.
 */
const RESERVE_JOB_SLOT = `
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[4]))
local n = redis.call('SCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2])
if n >= tonumber(ARGV[3]) then return n end
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return -1
`;
const RESERVATION_MS = 10 * 60_000;

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

  /**
   * Admits a request, holding `jobs` (0 or 1) of the tenant's job slots until the returned release is called (once
   * the job exists, or the request failed).
   */
  async admit(tenant: string, jobs: 0 | 1): Promise<() => Promise<void>> {
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
    const cap = this.config.maxQueuedJobsPerTenant;
    if (jobs === 0) {
      const active = await this.redis.scard(this.store.activeKey(tenant));
      if (active >= cap) throw new AppError('RATE_LIMITED', `${active} jobs are unfinished; the limit is ${cap}`, { retryAfterSeconds: 10 });
      return async () => undefined;
    }
    const slot = randomUUID();
    const slots = `${this.pipeline.prefix}:slots:${tenant}`;
    const refused = Number(await this.redis.eval(RESERVE_JOB_SLOT, 2, this.store.activeKey(tenant), slots, Date.now(), slot, cap, RESERVATION_MS));
    if (refused >= 0) throw new AppError('RATE_LIMITED', `${refused} jobs are unfinished or being created; the limit is ${cap}`, { retryAfterSeconds: 10 });
    return async () => {
      await this.redis.zrem(slots, slot);
    };
  }
}
