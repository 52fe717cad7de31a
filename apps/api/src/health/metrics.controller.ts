import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import { registerQueueGauges, registry, type Pipeline } from '@lib/job-store';
import { PIPELINE } from '../tokens.js';

/** Prometheus metrics: queue depths read at scrape time, plus this process's stage timings and counters. */
@Controller()
export class MetricsController {
  constructor(@Inject(PIPELINE) pipeline: Pipeline) {
    registerQueueGauges(Object.values(pipeline.queues));
  }

  @Get('metrics')
  async metrics(@Res() res: Response): Promise<void> {
    res.setHeader('Content-Type', registry.contentType);
    res.send(await registry.metrics());
  }
}
