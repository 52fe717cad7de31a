import { ROOT_CONTEXT, SpanKind, SpanStatusCode, propagation, trace, type Span } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * OpenTelemetry tracing. The API starts a span per request (continuing an incoming `traceparent`) and puts that
 * span's `traceparent` into the flow's payloads; each worker continues it, so one trace spans API, encoder and
 * decoder. Exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise spans are not recorded.
 */
export const TRACER = { api: 'e2llm-api', encoder: 'e2llm-encoder-worker', decoder: 'e2llm-decoder-worker' } as const;

let installed = false;

/** Installs the W3C propagator and a tracer provider with the given processors (an OTLP exporter, or a test's). */
export function setupTracing(processors: SpanProcessor[]): void {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  if (installed || processors.length === 0) return;
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: processors }));
  installed = true;
}

/** The OTLP exporter when an endpoint is configured. */
export async function setupOtlpTracing(endpoint: string | undefined): Promise<void> {
  if (!endpoint) return setupTracing([]);
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  setupTracing([new BatchSpanProcessor(new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` }))]);
}

/** Starts a span that continues `traceparent` (from a request header or a job payload) when there is one. */
export function startSpan(tracer: string, name: string, traceparent: string | undefined, kind: SpanKind, attributes: Record<string, string | number> = {}): Span {
  const parent = traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent }) : ROOT_CONTEXT;
  return trace.getTracer(tracer).startSpan(name, { kind, attributes }, parent);
}

/** The `traceparent` that makes the next hop a child of this span (undefined when tracing is off). */
export function traceparentOf(span: Span): string | undefined {
  if (!span.spanContext().traceId || !trace.isSpanContextValid(span.spanContext())) return undefined;
  const carrier: Record<string, string> = {};
  propagation.inject(trace.setSpan(ROOT_CONTEXT, span), carrier);
  return carrier.traceparent;
}

export function endSpan(span: Span, err?: unknown): void {
  if (err) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
  }
  span.end();
}

export { SpanKind };
