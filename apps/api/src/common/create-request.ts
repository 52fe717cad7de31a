import { Inject, Injectable } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Config } from '@lib/shared';
import { AdmissionService } from '../auth/admission.service.js';
import { CONFIG, JSON_BODIES } from '../tokens.js';
import type { JsonBodyPool } from './json-body-pool.js';
import { readBody, type ParsedBody } from './request-body.js';
import { traced } from './traced.js';

/**
 * The one way a create route (jobs, documents, document jobs, batches) takes a request: in a server span, the tenant
 * admitted first, the body read only then (after authentication and admission), large JSON parsed off the event loop.
 */
@Injectable()
export class CreateRequests {
  constructor(
    private readonly admission: AdmissionService,
    @Inject(CONFIG) private readonly config: Config,
    @Inject(JSON_BODIES) private readonly jsonBodies: JsonBodyPool,
  ) {}

  /** `jobs`: the job slots the request creates (1 for a job route), held against the tenant's cap while it runs. */
  async take<T>(route: string, tenant: string, req: Request, res: Response, create: (body: ParsedBody, traceparent: string | undefined) => Promise<T>, jobs: 0 | 1 = 0): Promise<T> {
    return traced(route, req, async (traceparent) => {
      const release = await this.admission.admit(tenant, jobs);
      try {
        return await create(await readBody(req, res, this.config.maxUploadBytes, this.jsonBodies), traceparent);
      } finally {
        await release().catch(() => undefined);
      }
    });
  }

  /** The headers of a created resource: where it lives, and whether an Idempotency-Key replayed it. */
  created(res: Response, location: string, replayed = false): void {
    if (replayed) res.setHeader('Idempotent-Replayed', 'true');
    res.setHeader('Location', location);
  }
}
