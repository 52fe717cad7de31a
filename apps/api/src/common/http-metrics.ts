import type { NextFunction, Request, Response } from 'express';
import { metrics } from '@lib/job-store';

/**
 * Times every request into e2llm_http_request_duration_seconds{method, route, status}. The route is the matched
 * pattern (`/v1/jobs/:id`), never the path, so ids do not make new series; a request no route matched (404s, bodies
 * refused before routing) counts under `unmatched`. Measured until the response closes, so an event stream's sample
 * is its whole length.
 */
export function httpMetrics() {
  return (req: Request, res: Response, next: NextFunction): void => {
    const t0 = performance.now();
    res.once('close', () => {
      const route = (req.route as { path?: unknown } | undefined)?.path;
      metrics.httpSeconds.observe(
        { method: req.method, route: typeof route === 'string' ? `${req.baseUrl}${route}` : 'unmatched', status: String(res.statusCode) },
        (performance.now() - t0) / 1000,
      );
    });
    next();
  };
}
