/**
 * Load test: autocannon against POST /v1/jobs on the process stack (API, encoder and decoder workers as child
 * processes, a Redis and an S3 server of its own, all on 127.0.0.1), bounded in count and time. Tiny documents and
 * maxNewTokens 1 so the workers drain; then every accepted job id must have ended `succeeded` (jobs lost: 0).
 *
 *   npm run test:load                          # LOAD_AMOUNT=800 LOAD_CONNECTIONS=16 LOAD_DURATION_S=30 LOAD_DRAIN_S=120
 *
 * Prints a report and writes it to .tmp/reports/load.json.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import autocannon from 'autocannon';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { apiClient, sleep, startProcessStack, TERMINAL, type ProcessStack } from '../faults/harness.js';

const AMOUNT = Number(process.env.LOAD_AMOUNT ?? 800);
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 16);
const DURATION_S = Number(process.env.LOAD_DURATION_S ?? 30);
const DRAIN_S = Number(process.env.LOAD_DRAIN_S ?? 120);
const CONCURRENCY = process.env.LOAD_WORKER_CONCURRENCY ?? '4';

let stack: ProcessStack;

beforeAll(async () => {
  stack = await startProcessStack({
    LOG_LEVEL: 'warn',
    ENCODER_CONCURRENCY: CONCURRENCY,
    DECODER_CONCURRENCY: CONCURRENCY,
    // The per-tenant rate limit would cap a single-tenant load test at its own figure; the queue caps stay at their
    // defaults so backpressure shows as 429s if the workers fall behind.
    RATE_LIMIT_PER_MINUTE: process.env.LOAD_RATE_LIMIT_PER_MINUTE ?? '1000000',
    ...(process.env.LOAD_MAX_QUEUED_JOBS_PER_TENANT ? { MAX_QUEUED_JOBS_PER_TENANT: process.env.LOAD_MAX_QUEUED_JOBS_PER_TENANT } : {}),
    ...(process.env.LOAD_MAX_ENCODE_QUEUE_DEPTH ? { MAX_ENCODE_QUEUE_DEPTH: process.env.LOAD_MAX_ENCODE_QUEUE_DEPTH } : {}),
  });
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

it(`load: up to ${AMOUNT} submissions over ${CONNECTIONS} connections, then drain; no job lost`, async () => {
  const accepted = new Set<string>();
  const acceptLatencies: number[] = [];
  const statuses: Record<string, number> = {};
  const retryAfter = new Set<string>();
  let n = 0;
  const t0 = Date.now();
  const instance = autocannon({
    url: `${stack.baseUrl}/v1/jobs`,
    connections: CONNECTIONS,
    amount: AMOUNT,
    duration: DURATION_S,
    timeout: 20,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.apiKey}` },
    requests: [
      {
        setupRequest(req) {
          n++;
          req.body = JSON.stringify({ text: `Tiny document ${n}: the harbour lantern was lit at dusk.`, task: { type: 'summarize' }, generation: { maxNewTokens: 1 } });
          return req;
        },
        onResponse(status, body, _ctx, headers) {
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status === 202) accepted.add(JSON.parse(body).id);
          // autocannon keeps the raw header case.
          const ra = Object.entries(headers ?? {}).find(([k]) => k.toLowerCase() === 'retry-after')?.[1];
          if (status === 429 && ra) retryAfter.add(String(ra));
        },
      },
    ],
  });
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
    if (statusCode === 202) acceptLatencies.push(responseTime);
  });
  // Hard stop, whatever autocannon's own bounds do.
  const hardStop = setTimeout(() => instance.stop(), (DURATION_S + 5) * 1000);
  const result = await instance;
  clearTimeout(hardStop);
  const submitS = (Date.now() - t0) / 1000;

  // Drain: every accepted job must end, then be succeeded.
  const api = apiClient(stack.baseUrl, stack.apiKey);
  const pending = new Set(accepted);
  const final: Record<string, number> = {};
  const drain0 = Date.now();
  while (pending.size > 0 && Date.now() - drain0 < DRAIN_S * 1000) {
    for (const id of [...pending]) {
      const r = await api.get(`/v1/jobs/${id}`, { timeoutMs: 10_000 }).catch(() => undefined);
      if (r?.status === 200 && TERMINAL.has(r.body.status)) {
        pending.delete(id);
        final[r.body.status] = (final[r.body.status] ?? 0) + 1;
      }
    }
    if (pending.size > 0) await sleep(1000);
  }
  const drainS = (Date.now() - drain0) / 1000;
  const sorted = [...acceptLatencies].sort((a, b) => a - b);
  const report = {
    command: 'npm run test:load',
    settings: { amount: AMOUNT, connections: CONNECTIONS, durationCapS: DURATION_S, drainCapS: DRAIN_S, workerConcurrency: Number(CONCURRENCY) },
    submitted: Object.values(statuses).reduce((a, b) => a + b, 0),
    submitSeconds: Number(submitS.toFixed(2)),
    statusCounts: statuses,
    accepted: accepted.size,
    acceptedPerSecond: Number((accepted.size / result.duration).toFixed(1)),
    acceptLatencyMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1) ?? NaN },
    autocannonLatencyMs: { p50: result.latency.p50, p99: result.latency.p99 },
    rateLimited429: statuses[429] ?? 0,
    retryAfterValues: [...retryAfter],
    connectionErrors: result.errors,
    timeouts: result.timeouts,
    completed: final.succeeded ?? 0,
    failed: final.failed ?? 0,
    cancelled: final.cancelled ?? 0,
    lost: accepted.size - (final.succeeded ?? 0),
    notEndedAfterDrain: pending.size,
    drainSeconds: Number(drainS.toFixed(1)),
    jobsPerSecondEndToEnd: Number(((final.succeeded ?? 0) / (submitS + drainS)).toFixed(1)),
  };
  console.log(`\n[load] report\n${JSON.stringify(report, null, 2)}\n`);
  await mkdir('.tmp/reports', { recursive: true });
  await writeFile('.tmp/reports/load.json', `${JSON.stringify(report, null, 2)}\n`);

  expect(accepted.size).toBeGreaterThan(0);
  expect(result.errors, 'connection errors').toBe(0);
  // Anything but 202 must be backpressure (429), never a 5xx.
  expect(Object.keys(statuses).filter((s) => s !== '202' && s !== '429')).toEqual([]);
  expect(report.lost).toBe(0);
});
