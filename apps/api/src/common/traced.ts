import type { Request } from 'express';
import { endSpan, SpanKind, startSpan, TRACER, traceparentOf } from '@lib/job-store';

/** Runs a request handler in a server span continuing the caller's `traceparent`; the jobs it makes continue it. */
export async function traced<T>(name: string, req: Request, fn: (traceparent: string | undefined) => Promise<T>): Promise<T> {
  const incoming = typeof req.headers.traceparent === 'string' ? req.headers.traceparent : undefined;
  const span = startSpan(TRACER.api, name, incoming, SpanKind.SERVER, { 'http.request.method': req.method, 'url.path': req.path });
  try {
    const result = await fn(traceparentOf(span));
    endSpan(span);
    return result;
  } catch (err) {
    endSpan(span, err);
    throw err;
  }
}
