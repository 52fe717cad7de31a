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
import { createRedis, jobEndRecorder, JobStore, Pipeline, setBuildInfo } from '@lib/job-store';
import { PlanningPool } from '@lib/model-runtime/planning';
import { AppError, ModelManifest, toAppError, type Config } from '@lib/shared';
import { AppModule } from './app.module.js';
import { assertAdmin, isLoopbackHost } from './auth/tenant.guard.js';
import { AppErrorFilter, sendError, toHttpError } from './common/app-error.filter.js';
import { httpMetrics } from './common/http-metrics.js';

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
        sendError(res, e);
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
  const { version } = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  setBuildInfo({ version, model: manifest.name, modelVersion: manifest.version });
  const blobs = deps.blobs ?? createBlobStore(config);
  // Fail fast while Redis is down or paused, so requests get 503 QUEUE_UNAVAILABLE instead of hanging.
  const redis = createRedis(config.redisUrl, { maxRetriesPerRequest: 1, commandTimeout: 3000 });
  const store = new JobStore(redis, config.redisPrefix, config.jobTtlSeconds, jobEndRecorder(logger));
  const pipeline = new Pipeline(redis, config.redisPrefix, store, { attempts: config.webhookMaxAttempts, backoffMs: config.webhookBackoffMs });
  const planner = new PlanningPool(config.modelPath, { threads: config.plannerThreads });
  const app = await NestFactory.create<NestExpressApplication>(AppModule.register({ config, blobs, store, pipeline, redis, manifest, planner, logger }), {
    bodyParser: false,
    logger: ['error', 'warn'],
  });
  app.use(httpMetrics());
  app.use(
    express.json({
      limit: config.maxUploadBytes,
      type: 'application/json',
      // body-parser would turn invalid UTF-8 into U+FFFD silently: refuse it instead.
      verify: (_req, _res, buf) => {
        try {
          new TextDecoder('utf-8', { fatal: true }).decode(buf);
        } catch {
          // A plain error: body-parser sets status on what verify throws (AppError's is read-only) and tags it
          // entity.verify.failed, which the error filter maps to INPUT_INVALID_UTF8.
          throw new Error('the JSON body is not valid UTF-8');
        }
      },
      // A "__proto__" key anywhere is refused: no request needs one, and some code would treat it specially.
      reviver: (key, value) => {
        if (key === '__proto__' || key === 'constructor' || key === 'prototype') throw new SyntaxError(`forbidden key ${key}`);
        return value;
      },
    }),
  );
  // Body-parser errors are answered here: past this point Nest would wrap them into a bare HttpException.
  app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => sendError(res, toHttpError(err)));
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
        await pipeline.close();
        await blobs.close?.();
        redis.disconnect();
      })()),
  };
  return handle;
}

export async function startApi(config: Config, deps: { logger?: Logger; blobs?: BlobStore } = {}): Promise<ApiHandle> {
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
