import { Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Redis } from 'ioredis';
import type { JobStore } from '@lib/job-store';
import { jobListPage, ListQuery, toPublicJob, type Config, type JobEvent, type JobListPage } from '@lib/shared';
import { parseWith, readBody } from '../common/request-body.js';
import { CONFIG, REDIS, STORE } from '../tokens.js';
import { AdmissionService } from '../auth/admission.service.js';
import { traced } from '../common/traced.js';
import { TenantGuard, TenantId } from '../auth/tenant.guard.js';
import { JobsService } from './jobs.service.js';

@Controller('v1/jobs')
@UseGuards(TenantGuard)
export class JobsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly admission: AdmissionService,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(STORE) private readonly store: JobStore,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  @Post()
  @HttpCode(202)
  async create(@TenantId() tenant: string, @Req() req: Request, @Res({ passthrough: true }) res: Response, @Headers('idempotency-key') key?: string) {
    const { job, replayed } = await traced('POST /v1/jobs', req, async (traceparent) => {
      await this.admission.admit(tenant);
      return this.jobs.createJob(tenant, await readBody(req, res, this.config.maxUploadBytes), key, traceparent);
    });
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.setHeader('Location', `/v1/jobs/${job.id}`);
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
   * the stream ends after a terminal status (with the job, result included, as the last `status` data).
   */
  @Get(':id/events')
  async events(@TenantId() tenant: string, @Param('id') id: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const job = await this.jobs.getJob(tenant, id);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    const send = (event: string, data: unknown) => res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    const end = async () => {
      send('status', toPublicJob((await this.store.getJob(id)) ?? job));
      res.end();
    };
    if (this.store.isTerminal(job.status)) return end();

    const sub = this.redis.duplicate();
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    const close = () => {
      clearInterval(heartbeat);
      sub.disconnect();
    };
    req.on('close', close);
    sub.on('message', (_channel: string, message: string) => {
      const event = JSON.parse(message) as JobEvent;
      if (event.type === 'status' && this.store.isTerminal(event.status)) {
        close();
        void end();
        return;
      }
      send(event.type, event);
    });
    await sub.subscribe(this.store.channel(id));
    // Subscribed now; anything that happened before is in the snapshot.
    const now = (await this.store.getJob(id)) ?? job;
    if (this.store.isTerminal(now.status)) {
      close();
      return end();
    }
    send('status', toPublicJob(now));
  }
}
