import 'reflect-metadata';
import { readFile } from 'node:fs/promises';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import { pino, type Logger } from 'pino';
import { createBlobStore, type BlobStore } from '@lib/blob-store';
import { createRedis, jobEndRecorder, JobStore, Pipeline, setBuildInfo } from '@lib/job-store';
import { PlanningPool, readManifest } from '@lib/model-runtime/planning';
import { ExtractionPool } from '@lib/extract';
import { AppError, toAppError, type Config } from '@lib/shared';
import { WebhookTargets, type HostResolver } from '@lib/webhooks';
import { AppModule } from './app.module.js';
import { JsonBodyPool } from './common/json-body-pool.js';
import { assertAdmin, isLoopbackHost } from './auth/tenant.guard.js';
import { AppErrorFilter, sendError } from './common/app-error.filter.js';
import { httpMetrics } from './common/http-metrics.js';

export interface ApiHandle {
  app: NestExpressApplication;
  /** The URL the API listens on (after listen). */
  url: string;
  close(): Promise<void>;
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
        sendError(res, e);
      }
    },
    board.getRouter(),
  );
}

/** What a caller (a test) may put in place of what the API makes from its configuration. */
export interface ApiOptions {
  logger?: Logger;
  blobs?: BlobStore;
  /** Resolves webhook host names at submission (default: the system resolver, as delivery uses). */
  resolveHost?: HostResolver;
}

export async function createApi(config: Config, deps: ApiOptions = {}): Promise<ApiHandle> {
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { app: 'api' } });
  if (config.apiKeys.length === 0) {
    if (!isLoopbackHost(config.host)) {
      throw new AppError('CONFIG_INVALID', `API_KEYS must be set when the API listens on a non-loopback address (HOST=${config.host})`);
    }
    logger.warn({ host: config.host }, 'no API_KEYS configured: serving one anonymous tenant, on loopback only');
  }
  const manifest = await readManifest(config.modelPath);
  const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  setBuildInfo({ version, model: manifest.name, modelVersion: manifest.version });
  const blobs = deps.blobs ?? createBlobStore(config);
  // Fail fast while Redis is down or paused, so requests get 503 QUEUE_UNAVAILABLE instead of hanging.
  const redis = createRedis(config.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 3000 });
  const store = new JobStore(redis, config.redisPrefix, config.jobTtlSeconds, jobEndRecorder(logger), config.retentionSeconds);
  const pipeline = new Pipeline(redis, config.redisPrefix, store, { attempts: config.webhookMaxAttempts, backoffMs: config.webhookBackoffMs });
  const planner = new PlanningPool(config.modelPath, { threads: config.plannerThreads });
  const jsonBodies = new JsonBodyPool({
    threads: config.plannerThreads,
    maxQueue: config.plannerThreads * 16,
    maxTextCodePoints: manifest.decoder.window * manifest.prompt.chunking.chunkChars,
    maxDocumentChars: config.maxDocumentChars,
  });
  const extractor = new ExtractionPool({ threads: config.extractThreads, memoryMb: config.extractMemoryMb, maxQueue: config.extractQueue });
  const webhookTargets = new WebhookTargets({ allowLoopback: config.webhookAllowLoopback, allowPrivate: config.webhookAllowPrivate }, { resolve: deps.resolveHost });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register({ config, blobs, store, pipeline, redis, manifest, planner, extractor, jsonBodies, logger, webhookTargets }), {
    bodyParser: false,
    logger: ['error', 'warn'],
  });
  app.use(httpMetrics());
  // No body parser: a create route reads its body itself (readBody), after its guard has authenticated the request,
  // so an unauthenticated body is never parsed, and JSON and multipart pass one set of checks.
  mountQueueDashboard(app, config, pipeline);
  app.useGlobalFilters(new AppErrorFilter(logger));
  app.disable('x-powered-by');
  let closing: Promise<void> | undefined;
  const handle: ApiHandle = {
    app,
    url: '',
    close: () =>
      (closing ??= (async () => {
        await app.close();
        await planner.close();
        await extractor.close();
        await jsonBodies.close();
        await pipeline.close();
        await blobs.close?.();
        redis.disconnect();
      })()),
  };
  return handle;
}

export async function startApi(config: Config, deps: ApiOptions = {}): Promise<ApiHandle> {
  const handle = await createApi(config, deps);
  await handle.app.listen(config.port, config.host);
  // Requests Node refuses before routing (oversized headers, malformed HTTP) still get the one error shape.
  handle.app.getHttpServer().on('clientError', (err: NodeJS.ErrnoException, socket: import('node:net').Socket) => {
    if (!socket.writable) return socket.destroy();
    const [status, code, message] =
      err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'INPUT_TOO_LARGE', 'request headers are too large'] : [400, 'INPUT_INVALID', 'malformed HTTP request'];
    const body = JSON.stringify({ error: { code, message } });
    socket.end(`HTTP/1.1 ${status} ${status === 431 ? 'Request Header Fields Too Large' : 'Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  });
  const address = handle.app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  handle.url = `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`;
  return handle;
}
