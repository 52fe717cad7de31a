import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { setupTracing, TRACER } from '@lib/job-store';
import { startStack, type Stack } from './stack.js';

const spans = new InMemorySpanExporter();

/** The value of one sample in Prometheus text format (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z0-9_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return 0;
}

describe('observability', () => {
  let stack: Stack;
  let http: ReturnType<typeof request>;
  beforeAll(async () => {
    setupTracing([new SimpleSpanProcessor(spans)]);
    stack = await startStack();
    http = request(stack.api.url);
  }, 120_000);
  afterAll(async () => stack?.stop());

  async function run(text: string, traceparent?: string) {
    const req = http.post('/v1/jobs');
    const id = (await (traceparent ? req.set('traceparent', traceparent) : req).send({ text, task: { type: 'summarize' }, generation: { maxNewTokens: 5 } }).expect(202)).body.id;
    for (let i = 0; i < 600; i++) {
      const job = (await http.get(`/v1/jobs/${id}`)).body;
      if (job.status === 'succeeded') return job;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('job did not finish');
  }

  it('exports queue gauges and the counters move when jobs run', async () => {
    const before = (await http.get('/metrics').expect(200)).text;
    expect(before).toContain('e2llm_queue_jobs{queue="encode",state="waiting"}');
    expect(before).toContain('e2llm_queue_jobs{queue="decode",state="active"}');
    const text = `Metrics move when jobs run. ${'A sentence to encode. '.repeat(40)}${Date.now()}`;
    const job = await run(text);
    await run(text);
    const after = (await http.get('/metrics').expect(200)).text;
    expect(sample(after, 'e2llm_generated_tokens_total') - sample(before, 'e2llm_generated_tokens_total')).toBe(job.result.usage.generatedTokens * 2);
    expect(sample(after, 'e2llm_stage_duration_seconds_count', { stage: 'encode_inference' })).toBeGreaterThan(sample(before, 'e2llm_stage_duration_seconds_count', { stage: 'encode_inference' }));
    expect(sample(after, 'e2llm_stage_duration_seconds_count', { stage: 'prefill' }) - sample(before, 'e2llm_stage_duration_seconds_count', { stage: 'prefill' })).toBe(2);
    expect(sample(after, 'e2llm_soft_prompt_cache_total', { result: 'hit' }) - sample(before, 'e2llm_soft_prompt_cache_total', { result: 'hit' })).toBe(job.progress.chunksTotal);
    expect(sample(after, 'e2llm_soft_prompt_cache_hit_ratio')).toBeGreaterThan(0);
    expect(sample(after, 'e2llm_encoder_batch_chunks_count')).toBeGreaterThan(0);
    expect(sample(after, 'e2llm_job_duration_seconds_count', { status: 'succeeded' })).toBeGreaterThanOrEqual(2);
  });

  it('carries one trace from the API request through the encoder and decoder jobs', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    spans.reset();
    await run(`Tracing crosses processes. ${Date.now()}`, `00-${traceId}-00f067aa0ba902b7-01`);
    await new Promise((r) => setTimeout(r, 200));
    const finished = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const byApp = new Set(finished.map((s) => s.instrumentationScope.name));
    expect(byApp).toEqual(new Set([TRACER.api, TRACER.encoder, TRACER.decoder]));
    expect(finished.map((s) => s.name)).toEqual(expect.arrayContaining(['POST /v1/jobs', 'encode-chunks', 'decode-job']));
    const api = finished.find((s) => s.name === 'POST /v1/jobs')!;
    const decode = finished.find((s) => s.name === 'decode-job')!;
    expect(decode.parentSpanContext?.spanId ?? (decode as unknown as { parentSpanId?: string }).parentSpanId).toBe(api.spanContext().spanId);
  });
});
