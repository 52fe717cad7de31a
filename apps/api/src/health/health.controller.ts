import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { BlobStore } from '@lib/blob-store';
import type { JobStore } from '@lib/job-store';
import { AppError, toAppError, type Config } from '@lib/shared';
import { BLOBS, CONFIG, STORE } from '../tokens.js';

@Controller()
export class HealthController {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(BLOBS) private readonly blobs: BlobStore,
    @Inject(STORE) private readonly store: JobStore,
  ) {}

  /** Liveness: the process answers. */
  @Get('healthz')
  healthz() {
    return { status: 'ok' };
  }

  /** Readiness: Redis, the blob store and the model package are reachable. */
  @Get('readyz')
  async readyz(@Res({ passthrough: true }) res: Response) {
    const check = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
        return { ok: true };
      } catch (err) {
        const e = toAppError(err);
        return { ok: false, code: e.code, message: e.message };
      }
    };
    const checks = {
      redis: await check(() => this.store.ping()),
      blobStore: await check(() => this.blobs.ping()),
      model: await check(() =>
        access(join(this.config.modelPath, 'manifest.json')).catch(() => {
          throw new AppError('MODEL_NOT_FOUND', 'model package not reachable');
        }),
      ),
    };
    const ready = Object.values(checks).every((c) => c.ok);
    if (!ready) res.status(503);
    return { status: ready ? 'ready' : 'unavailable', checks };
  }
}
