import { Controller, Get, Headers, HttpCode, Inject, Param, Post, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { toPublicDocument, toPublicJob, type Config } from '@lib/shared';
import { readBody } from '../common/request-body.js';
import { AdmissionService } from '../auth/admission.service.js';
import { traced } from '../common/traced.js';
import { TenantGuard, TenantId } from '../auth/tenant.guard.js';
import { JobsService } from '../jobs/jobs.service.js';
import { CONFIG, JSON_BODIES } from '../tokens.js';
import type { JsonBodyPool } from '../common/json-body-pool.js';

/** Documents asked many questions: stored and encoded once, then asked without re-uploading. */
@Controller('v1/documents')
@UseGuards(TenantGuard)
export class DocumentsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly admission: AdmissionService,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(JSON_BODIES) private readonly jsonBodies: JsonBodyPool,
  ) {}

  @Post()
  @HttpCode(202)
  async create(@TenantId() tenant: string, @Req() req: Request, @Res({ passthrough: true }) res: Response) {
    const doc = await traced('POST /v1/documents', req, async (traceparent) => {
      await this.admission.admit(tenant);
      return this.jobs.createDocument(tenant, await readBody(req, res, this.config.maxUploadBytes, this.jsonBodies), traceparent);
    });
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
    const { job, replayed } = await traced('POST /v1/documents/:id/jobs', req, async (traceparent) => {
      await this.admission.admit(tenant);
      return this.jobs.createDocumentJob(tenant, id, await readBody(req, res, this.config.maxUploadBytes, this.jsonBodies), key, traceparent);
    });
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.setHeader('Location', `/v1/jobs/${job.id}`);
    return toPublicJob(job);
  }
}
