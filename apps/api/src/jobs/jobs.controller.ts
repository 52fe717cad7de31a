import { Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Redis } from 'ioredis';
import { createSession } from 'better-sse';
import type { Logger } from 'pino';
import type { JobStore } from '@lib/job-store';
import { AppError, jobListPage, ListQuery, STREAM_EVENT_ID, toPublicJob, type JobRecord } from '@lib/shared';
import { parseWith } from '../common/request-body.js';
import { LOGGER, REDIS, STORE } from '../tokens.js';
import { CreateRequests } from '../common/create-request.js';
import { TenantGuard, TenantId } from '../auth/tenant.guard.js';
import { JobsService } from './jobs.service.js';

@Controller('v1/jobs')
@UseGuards(TenantGuard)
export class JobsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly requests: CreateRequests,
    @Inject(STORE) private readonly store: JobStore,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  @Post()
  @HttpCode(202)
  async create(@TenantId() tenant: string, @Req() req: Request, @Res({ passthrough: true }) res: Response, @Headers('idempotency-key') key?: string) {
    const { job, replayed } = await this.requests.take('POST /v1/jobs', tenant, req, res, (body, traceparent) => this.jobs.createJob(tenant, body, key, traceparent), 1);
    this.requests.created(res, `/v1/jobs/${job.id}`, replayed);
    return toPublicJob(job);
  }

  @Get()
  async list(@TenantId() tenant: string, @Query() query: unknown) {
    const q = parseWith(ListQuery, query, 'query');
    const page = await this.jobs.listJobs(tenant, q.limit, q.after);
    return jobListPage(page.data.map(toPublicJob), page.nextCursor);
  }

  @Get(':id')
  async get(@TenantId() tenant: string, @Param('id') id: string) {
    return toPublicJob(await this.jobs.getJob(tenant, id));
  }

  @Post(':id/cancel')
  @HttpCode(200)
  async cancel(@TenantId() tenant: string, @Param('id') id: string) {
    return toPublicJob(await this.jobs.cancel(tenant, id));
  }

  /**
   * Server-sent events: a `status` snapshot first, then `status`, `progress` and `text` events as they happen;
   * the stream ends after a terminal status (with the job, result included, as the last `status` data). Every event
   * has an id (its entry in the job's event stream): a client that reconnects with `Last-Event-ID` (header, or the
   * `lastEventId` query parameter) gets the events after that one, each exactly once, and no new snapshot. Resuming
   * after the terminal event answers 204, which tells an EventSource to stop reconnecting.
   */
  @Get(':id/events')
  async events(@TenantId() tenant: string, @Param('id') id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const job = await this.jobs.getJob(tenant, id);
    const resumeFrom = lastEventId(req);
    let cursor: string;
    let first: { job: JobRecord; id: string } | null = null;
    if (resumeFrom === undefined) {
      const snap = await this.store.snapshot(id);
      first = { job: snap.job ?? job, id: snap.lastEventId };
      cursor = snap.lastEventId;
    } else {
      cursor = resumeFrom;
      if (this.store.isTerminal(job.status) && (await this.store.readEvents(id, cursor, 0)).length === 0) {
        res.status(204).end();
        return;
      }
    }

    // Blocking reads hold a connection: each stream reads on one of its own, closed with the stream.
    const reader = this.redis.duplicate({ commandTimeout: READ_BLOCK_MS + 5000, maxRetriesPerRequest: 1 });
    const session = await createSession(req, res, { keepAlive: 15_000, retry: 2000, trustClientEventId: false });
    session.once('disconnected', () => reader.disconnect());
    const finish = async (eventId: string) => {
      const ended = (await this.store.getJob(id)) ?? job;
      if (session.isConnected) session.push(toPublicJob(ended), 'status', eventId);
      res.end();
    };
    try {
      if (first) {
        if (this.store.isTerminal(first.job.status)) return await finish(first.id);
        session.push(toPublicJob(first.job), 'status', first.id);
      }
      while (session.isConnected) {
        const entries = await this.store.readEvents(id, cursor, READ_BLOCK_MS, reader);
        for (const { id: eventId, event } of entries) {
          cursor = eventId;
          if (event.type === 'status' && this.store.isTerminal(event.status)) return await finish(eventId);
          session.push(event, event.type, eventId);
        }
        if (entries.length === 0) {
          // Nothing for a while: a job that ended with no terminal event in its stream, or expired, still ends here.
          const now = await this.store.getJob(id);
          if (!now) return void res.end();
          if (this.store.isTerminal(now.status)) return await finish(cursor);
        }
      }
    } catch (err) {
      // The client went away (its reader was closed under a blocking read: nothing to say) or Redis did while the
      // client was still there: the stream ends, and the client resumes from the last id it got.
      if (session.isConnected) {
        this.logger.warn({ jobId: id, err: (err as Error).message }, 'event stream ended early');
        res.end();
      }
    } finally {
      reader.disconnect();
    }
  }
}

const READ_BLOCK_MS = 10_000;

/** The id a reconnecting client last got: the Last-Event-ID header, or `lastEventId` in the query (browsers' fallback). */
function lastEventId(req: Request): string | undefined {
  const raw = req.header('last-event-id') ?? (typeof req.query.lastEventId === 'string' ? req.query.lastEventId : undefined);
  if (raw === undefined || raw.trim() === '') return undefined;
  if (!STREAM_EVENT_ID.test(raw.trim())) {
    throw new AppError('INPUT_INVALID', `Last-Event-ID must be an event id this stream sent (like 1733300000000-0), got "${raw.slice(0, 40)}"`);
  }
  return raw.trim();
}
