import 'reflect-metadata';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import { pino, type Logger } from 'pino';
import { createBlobStore, type BlobStore } from '@lib/blob-store';
import { createRedis, JobStore, Pipeline } from '@lib/job-store';
import { AppError, ERROR_CODES, ModelManifest, toAppError, type Config } from '@lib/shared';
import { AppModule } from './app.module.js';
import { assertAdmin, isLoopbackHost } from './auth/tenant.guard.js';
import { AppErrorFilter } from './common/app-error.filter.js';

export interface ApiHandle {
  app: NestExpressApplication;
  /** The URL the API listens on (after listen). */
  url: string;
  close(): Promise<void>;
}

/** The API reads only the manifest: chunking settings and the window. It never loads a model. */
async function readManifest(modelPath: string): Promise<ModelManifest> {
  try {
    return ModelManifest.parse(JSON.parse(await readFile(join(modelPath, 'manifest.json'), 'utf8')));
  } catch (err) {
    throw new AppError('MODEL_INVALID', `cannot read the model manifest in ${modelPath}: ${(err as Error).message}`);
  }
}

/** The BullMQ dashboard at /admin/queues, behind the admin key. */
function mountQueueDashboard(app: NestExpressApplication, config: Config, pipeline: Pipeline): void {
  const board = new ExpressAdapter();
  board.setBasePath('/admin/queues');
  createBullBoard({ queues: Object.values(pipeline.queues).map((q) => new BullMQAdapter(q)), serverAdapter: board });
  app.use(
    '/admin/queues',
    (req: express.Request, res: express.Response, next: express.NextFunction) => {
      try {
        assertAdmin(config, req.headers.authorization);
        next();
      } catch (err) {
        const e = toAppError(err);
        if (e.code === 'UNAUTHORIZED') res.setHeader('WWW-Authenticate', 'Basic realm="e2llm admin"');
        res.status(ERROR_CODES[e.code].status).json({ error: e.toJSON() });
      }
    },
    board.getRouter(),
  );
}

export async function createApi(config: Config, deps: { logger?: Logger; blobs?: BlobStore } = {}): Promise<ApiHandle> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { app: 'api' } });
  if (config.apiKeys.length === 0) {
    if (!isLoopbackHost(config.host)) {
      throw new AppError('CONFIG_INVALID', `API_KEYS must be set when the API listens on a non-loopback address (HOST=${config.host})`);
    }
    logger.warn({ host: config.host }, 'no API_KEYS configured: serving one anonymous tenant, on loopback only');
  }
  const manifest = await readManifest(config.modelPath);
  const blobs = deps.blobs ?? createBlobStore(config);
  // Fail fast while Redis is down or paused, so requests get 503 QUEUE_UNAVAILABLE instead of hanging.
  const redis = createRedis(config.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 3000 });
  const store = new JobStore(redis, config.redisPrefix, config.jobTtlSeconds);
  const pipeline = new Pipeline(redis, config.redisPrefix, store, { attempts: config.webhookMaxAttempts, backoffMs: config.webhookBackoffMs });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register({ config, blobs, store, pipeline, redis, manifest, logger }), {
    bodyParser: false,
    logger: ['error', 'warn'],
  });
  app.use(express.json({ limit: config.maxUploadBytes, type: 'application/json' }));
  mountQueueDashboard(app, config, pipeline);
  app.useGlobalFilters(new AppErrorFilter(logger));
  app.enableShutdownHooks();
  app.disable('x-powered-by');
  const handle: ApiHandle = {
    app,
    url: '',
    async close() {
      await app.close();
      await pipeline.close();
      await blobs.close?.();
      redis.disconnect();
    },
  };
  return handle;
}

export async function startApi(config: Config, deps: { logger?: Logger; blobs?: BlobStore } = {}): Promise<ApiHandle> {
  const handle = await createApi(config, deps);
  await handle.app.listen(config.port, config.host);
  const address = handle.app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  handle.url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  return handle;
}
