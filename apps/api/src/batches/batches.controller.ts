import { Controller, Get, Headers, HttpCode, Inject, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { ListQuery, batchListPage, toPublicBatch, type Config } from '@lib/shared';
import { parseWith, readBody } from '../common/request-body.js';
import type { JsonBodyPool } from '../common/json-body-pool.js';
import { AdmissionService } from '../auth/admission.service.js';
import { traced } from '../common/traced.js';
import { TenantGuard, TenantId } from '../auth/tenant.guard.js';
import { CONFIG, JSON_BODIES } from '../tokens.js';
import { BatchesService } from './batches.service.js';

/** GET /v1/batches/:id/results: the lines from `offset` on (a client tailing a running batch asks from the count it has). */
const ResultsQuery = z.object({ offset: z.coerce.number().int().min(0).default(0) }).strict();

/** Many tasks over one document: the document encoded once, each item a job; results as JSONL while items end. */
@Controller('v1/batches')
@UseGuards(TenantGuard)
export class BatchesController {
  constructor(
    private readonly batches: BatchesService,
    private readonly admission: AdmissionService,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(JSON_BODIES) private readonly jsonBodies: JsonBodyPool,
  ) {}

  @Post()
  @HttpCode(202)
  async create(@TenantId() tenant: string, @Req() req: Request, @Res({ passthrough: true }) res: Response, @Headers('idempotency-key') key?: string) {
    const { batch, replayed } = await traced('POST /v1/batches', req, async (traceparent) => {
      await this.admission.admit(tenant);
      return this.batches.create(tenant, await readBody(req, res, this.config.maxUploadBytes, this.jsonBodies), key, traceparent);
    });
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.setHeader('Location', `/v1/batches/${batch.id}`);
    return toPublicBatch(batch);
  }

  @Get()
  async list(@TenantId() tenant: string, @Query() query: unknown) {
    const q = parseWith(ListQuery, query, 'query');
    const page = await this.batches.list(tenant, q.limit, q.after);
    return batchListPage(page.data.map(toPublicBatch), page.nextCursor);
  }

  @Get(':id')
  async get(@TenantId() tenant: string, @Param('id') id: string) {
    return toPublicBatch(await this.batches.get(tenant, id));
  }

  /** JSONL, one BatchResultLine per ended item, in the order they ended; it grows until the batch ends. */
  @Get(':id/results')
  async results(@TenantId() tenant: string, @Param('id') id: string, @Query() query: unknown, @Res({ passthrough: true }) res: Response): Promise<string> {
    const { offset } = parseWith(ResultsQuery, query, 'query');
    const lines = await this.batches.results(tenant, id, offset);
    res.type('application/jsonl; charset=utf-8');
    return lines.map((l) => `${l}\n`).join('');
  }

  @Post(':id/cancel')
  @HttpCode(200)
  async cancel(@TenantId() tenant: string, @Param('id') id: string) {
    return toPublicBatch(await this.batches.cancel(tenant, id));
  }
}
