import { Controller, Get, Headers, HttpCode, Param, Post, Query, Req, Res, UseGuards } from '@nestjs/common';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { ListQuery, batchListPage, toPublicBatch } from '@lib/shared';
import { parseWith } from '../common/request-body.js';
import { CreateRequests } from '../common/create-request.js';
import { TenantGuard, TenantId } from '../auth/tenant.guard.js';
import { BatchesService } from './batches.service.js';

/** GET /v1/batches/:id/results: the lines from `offset` on (a client tailing a running batch asks from the count it has). */
const ResultsQuery = z.object({ offset: z.coerce.number().int().min(0).default(0) }).strict();

/** Many tasks over one document: the document encoded once, each item a job; results as JSONL while items end. */
@Controller('v1/batches')
@UseGuards(TenantGuard)
export class BatchesController {
  constructor(
    private readonly batches: BatchesService,
    private readonly requests: CreateRequests,
  ) {}

  @Post()
  @HttpCode(202)
  async create(@TenantId() tenant: string, @Req() req: Request, @Res({ passthrough: true }) res: Response, @Headers('idempotency-key') key?: string) {
    const { batch, replayed } = await this.requests.take('POST /v1/batches', tenant, req, res, (body, traceparent) => this.batches.create(tenant, body, key, traceparent));
    this.requests.created(res, `/v1/batches/${batch.id}`, replayed);
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
