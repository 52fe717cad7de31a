import { Ajv2020 } from 'ajv/dist/2020.js';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { setupTracing, TRACER } from '@lib/job-store';
import { loadModelPackage } from '@lib/model-runtime';
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

  /** The sum of every sample of one metric (all label sets). */
  function total(text: string, name: string): number {
    return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
  }

  it('counts a cancelled job once: one cancelled outcome, one duration sample, no failure of any code', async () => {
    const before = (await http.get('/metrics').expect(200)).text;
    // Many chunks (many encode steps in flight) and a long forced generation, so the cancel lands while steps run.
    const run = Date.now();
    const body = Array.from({ length: 400 }, (_, i) => `Cancelled while it runs: sentence ${i} of run ${run}.`).join(' ');
    const id = (await http.post('/v1/jobs').send({ text: body, task: { type: 'summarize' }, generation: { maxNewTokens: 256, minNewTokens: 256 } }).expect(202)).body.id;
    for (let i = 0; i < 100 && (await http.get(`/v1/jobs/${id}`)).body.status === 'queued'; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await http.post(`/v1/jobs/${id}/cancel`).expect(200)).body.status).toBe('cancelled');
    // Let every step that was running see the cancel and stop (each would have counted a failure before).
    for (let i = 0; i < 200; i++) {
      const m = (await http.get('/metrics')).text;
      if (sample(m, 'e2llm_queue_jobs', { queue: 'encode', state: 'active' }) + sample(m, 'e2llm_queue_jobs', { queue: 'decode', state: 'active' }) === 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 300));
    const after = (await http.get('/metrics').expect(200)).text;
    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('e2llm_jobs_finished_total', { status: 'cancelled' })).toBe(1);
    expect(delta('e2llm_jobs_finished_total', { status: 'failed' })).toBe(0);
    expect(delta('e2llm_job_duration_seconds_count', { status: 'cancelled' })).toBe(1);
    expect(total(after, 'e2llm_job_failures_total') - total(before, 'e2llm_job_failures_total')).toBe(0);
    expect((await http.get(`/v1/jobs/${id}`)).body).toMatchObject({ status: 'cancelled', error: { code: 'JOB_CANCELLED' } });
  });

  it('serves process and Node.js metrics, HTTP request durations by route and status, and the build info', async () => {
    const job = await run(`Routes are patterns. ${Date.now()}`);
    await http.get(`/v1/jobs/${job.id}`).expect(200);
    await http.get('/v1/jobs/job_nope').expect(404);
    await http.get('/no/such/route').expect(404);
    const text = (await http.get('/metrics').expect(200)).text;
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds_count']) {
      expect(text, name).toMatch(new RegExp(`^${name}(\\{[^}]*\\})? `, 'm'));
    }
    expect(sample(text, 'e2llm_http_request_duration_seconds_count', { method: 'GET', route: '/v1/jobs/:id', status: '200' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'e2llm_http_request_duration_seconds_count', { method: 'GET', route: '/v1/jobs/:id', status: '404' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'e2llm_http_request_duration_seconds_count', { method: 'POST', route: '/v1/jobs', status: '202' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'e2llm_http_request_duration_seconds_count', { method: 'GET', route: 'unmatched', status: '404' })).toBeGreaterThanOrEqual(1);
    // Ids never become label values.
    expect(text).not.toContain(job.id);
    expect(sample(text, 'e2llm_build_info', { version: '0.1.0', node: process.version, model: 'e2llm-tiny', model_version: '0.1.0' })).toBe(1);
  });

  it('lists the served model package at GET /v1/models', async () => {
    const res = await http.get('/v1/models').expect(200);
    expect(res.body).toEqual({
      object: 'list',
      data: [
        {
          object: 'model',
          id: 'e2llm-tiny',
          version: '0.1.0',
          encoderId: expect.stringMatching(/^enc-[0-9a-f]{32}$/),
          window: 4096,
          chunkChars: 512,
          languages: ['en'],
          tasks: ['qa', 'summarize', 'reconstruct', 'instruct'],
        },
      ],
    });
    // The served OpenAPI document describes it (generated from the contract's ModelListSchema).
    const doc = (await http.get('/docs/openapi.json').expect(200)).body;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const valid = ajv.compile(doc.components.schemas.ModelList);
    expect(valid(res.body), JSON.stringify(valid.errors)).toBe(true);
    expect(valid({ ...res.body, data: [{ ...res.body.data[0], window: 'big' }] })).toBe(false);
    expect(doc.paths['/v1/jobs/{id}/events'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['id', 'Last-Event-ID', 'lastEventId']);
    // The same encoder id the workers store soft prompts under.
    expect(res.body.data[0].encoderId).toBe((await loadModelPackage(stack.config.modelPath)).encoderId);
  });
});
