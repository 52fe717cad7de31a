import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { GenerationParams, type JobRecord } from '@lib/shared';
import { createRedis } from '../queue/pipeline.js';
import { newId } from '../records/job-store.js';

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

/** A queued job record for specs (a summarize task, one chunk, default generation); `fields` override any part. */
export function queuedJob(fields: Partial<JobRecord> = {}): JobRecord {
  const now = new Date().toISOString();
  return {
    id: newId('job'),
    tenant: 'tenant-a',
    status: 'queued',
    task: { type: 'summarize' },
    generation: GenerationParams.parse({}),
    webhook: null,
    metadata: {},
    documentId: null,
    sourceKey: 'sources/x',
    chars: 10,
    chunkMs: 1,
    progress: { chunksTotal: 1, chunksEncoded: 0, chunksCached: 0 },
    createdAt: now,
    startedAt: null,
    finishedAt: null,
    expiresAt: now,
    result: null,
    error: null,
    ...fields,
  };
}
