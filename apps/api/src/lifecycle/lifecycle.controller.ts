import { Controller, Delete, Get, HttpCode, Inject, Injectable, Param, Post, Query, UseGuards, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import type { JobStore } from '@lib/job-store';
import { documentListPage, ListQuery, toPublicDocument, type Config, type Deleted, type TenantPurge } from '@lib/shared';
import { assertAdmin, TenantGuard, TenantId } from '../auth/tenant.guard.js';
import { parseWith } from '../common/request-body.js';
import { CONFIG, STORE } from '../tokens.js';
import { LifecycleService } from './lifecycle.service.js';

/** Listing documents and deleting jobs and documents: what a tenant keeps, and how it removes it. */
@Controller('v1')
@UseGuards(TenantGuard)
export class LifecycleController {
  constructor(
    private readonly lifecycle: LifecycleService,
    @Inject(STORE) private readonly store: JobStore,
  ) {}

  /** GET /v1/documents: newest first, paged as GET /v1/jobs (`limit`, `after` = the previous page's nextCursor). */
  @Get('documents')
  async listDocuments(@TenantId() tenant: string, @Query() query: unknown) {
    const q = parseWith(ListQuery, query, 'query');
    const page = await this.store.listDocuments(tenant, q.limit, q.after);
    return documentListPage(page.data.map(toPublicDocument), page.nextCursor);
  }

  /** DELETE /v1/jobs/:id: cancels it if it has not ended, then deletes it. */
  @Delete('jobs/:id')
  @HttpCode(200)
  async deleteJob(@TenantId() tenant: string, @Param('id') id: string): Promise<Deleted> {
    await this.lifecycle.deleteJob(tenant, id);
    return { object: 'job', id, deleted: true, jobs: [] };
  }

  /** DELETE /v1/documents/:id: the document and the jobs asked on it. */
  @Delete('documents/:id')
  @HttpCode(200)
  async deleteDocument(@TenantId() tenant: string, @Param('id') id: string): Promise<Deleted> {
    const jobs = await this.lifecycle.deleteDocument(tenant, id);
    return { object: 'document', id, deleted: true, jobs };
  }
}

/** ADMIN_API_KEY, as for the queue dashboard (Bearer, or Basic with the key as the password). */
@Injectable()
export class AdminGuard implements CanActivate {
  constructor(@Inject(CONFIG) private readonly config: Config) {}

  canActivate(context: ExecutionContext): boolean {
    assertAdmin(this.config, context.switchToHttp().getRequest<Request>().headers.authorization);
    return true;
  }
}

@Controller('admin/tenants')
@UseGuards(AdminGuard)
export class AdminTenantsController {
  constructor(private readonly lifecycle: LifecycleService) {}

  /** Deletes everything a tenant has stored: jobs (running ones cancelled), documents, results, soft prompts. */
  @Post(':tenant/purge')
  @HttpCode(200)
  async purge(@Param('tenant') tenant: string): Promise<TenantPurge> {
    return { object: 'tenant.purge', tenant, ...(await this.lifecycle.purgeTenant(tenant)) };
  }
}
