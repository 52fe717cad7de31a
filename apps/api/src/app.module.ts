import { Module, type DynamicModule } from '@nestjs/common';
import { AdmissionService } from './auth/admission.service.js';
import { BatchesController } from './batches/batches.controller.js';
import { BatchesService } from './batches/batches.service.js';
import { TenantGuard } from './auth/tenant.guard.js';
import { ConsoleController } from './console/console.controller.js';
import { DocsController } from './docs/openapi.js';
import { DocumentsController } from './documents/documents.controller.js';
import { HealthController } from './health/health.controller.js';
import { MetricsController } from './health/metrics.controller.js';
import { JobsController } from './jobs/jobs.controller.js';
import { JobsService } from './jobs/jobs.service.js';
import { CreateRequests } from './common/create-request.js';
import { AdminGuard, AdminTenantsController, LifecycleController } from './lifecycle/lifecycle.controller.js';
import { LifecycleService } from './lifecycle/lifecycle.service.js';
import { ModelsController } from './models/models.controller.js';
import { BLOBS, CONFIG, EXTRACTOR, JSON_BODIES, LOGGER, MODEL_INFO, PIPELINE, PLANNER, REDIS, STORE, WEBHOOK_TARGETS } from './tokens.js';

export interface ApiDeps {
  config: unknown;
  blobs: unknown;
  store: unknown;
  pipeline: unknown;
  redis: unknown;
  manifest: unknown;
  planner: unknown;
  extractor: unknown;
  jsonBodies: unknown;
  logger: unknown;
  webhookTargets: unknown;
}

@Module({})
export class AppModule {
  static register(deps: ApiDeps): DynamicModule {
    return {
      module: AppModule,
      controllers: [JobsController, DocumentsController, BatchesController, LifecycleController, AdminTenantsController, HealthController, MetricsController, DocsController, ConsoleController, ModelsController],
      providers: [
        JobsService,
        CreateRequests,
        BatchesService,
        LifecycleService,
        AdmissionService,
        TenantGuard,
        AdminGuard,
        { provide: CONFIG, useValue: deps.config },
        { provide: BLOBS, useValue: deps.blobs },
        { provide: STORE, useValue: deps.store },
        { provide: PIPELINE, useValue: deps.pipeline },
        { provide: REDIS, useValue: deps.redis },
        { provide: MODEL_INFO, useValue: deps.manifest },
        { provide: PLANNER, useValue: deps.planner },
        { provide: EXTRACTOR, useValue: deps.extractor },
        { provide: JSON_BODIES, useValue: deps.jsonBodies },
        { provide: LOGGER, useValue: deps.logger },
        { provide: WEBHOOK_TARGETS, useValue: deps.webhookTargets },
      ],
    };
  }
}
