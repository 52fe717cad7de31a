import { Controller, Get, Headers, HttpCode, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { toPublicDocument, toPublicJob } from '@lib/shared';
import { CreateRequests } from '../common/create-request.js';
import { TenantGuard, TenantId } from '../auth/tenant.guard.js';
import { JobsService } from '../jobs/jobs.service.js';

/** Documents asked many questions: stored and encoded once, then asked without re-uploading. */
@Controller('v1/documents')
@UseGuards(TenantGuard)
export class DocumentsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly requests: CreateRequests,
  ) {}

  @Post()
  @HttpCode(202)
  async create(@TenantId() tenant: string, @Req() req: Request, @Res({ passthrough: true }) res: Response) {
    const doc = await this.requests.take('POST /v1/documents', tenant, req, res, (body, traceparent) => this.jobs.createDocument(tenant, body, traceparent));
    res.setHeader('Location', `/v1/documents/${doc.id}`);
    return toPublicDocument(doc);
  }

  @Get(':id')
  async get(@TenantId() tenant: string, @Param('id') id: string) {
    return toPublicDocument(await this.jobs.getDocument(tenant, id));
  }

  @Post(':id/jobs')
  @HttpCode(202)
  async ask(@TenantId() tenant: string, @Param('id') id: string, @Req() req: Request, @Res({ passthrough: true }) res: Response, @Headers('idempotency-key') key?: string) {
    const { job, replayed } = await this.requests.take('POST /v1/documents/:id/jobs', tenant, req, res, (body, traceparent) =>
      this.jobs.createDocumentJob(tenant, id, body, key, traceparent), 1,
    );
    this.requests.created(res, `/v1/jobs/${job.id}`, replayed);
    return toPublicJob(job);
  }
}
