import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createRedis } from '../queue/pipeline.js';

/** A connection to the test machine's Redis and a key prefix of the caller's own (REDIS_URL, else local DB 0). */
export interface TestRedis {
  redis: Redis;
  prefix: string;
  /** Deletes every key under the prefix and disconnects. */
  cleanup(): Promise<void>;
}

export function testRedis(): TestRedis {
  const redis = createRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0');
  const prefix = `e2llm-spec-${randomUUID()}`;
  return {
    redis,
    prefix,
    async cleanup() {
      const keys = await redis.keys(`${prefix}:*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    },
  };
}
