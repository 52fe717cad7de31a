/**
 * Fault injection against the distributed pipeline: the API, the encoder worker and the decoder worker run as separate
 * processes against a Redis server and an S3 server of this suite's own, on 127.0.0.1. Each scenario submits jobs
 * (each with a webhook), injects one fault, and then asserts that every accepted job ends `succeeded` with the answer
 * `E2llmModel.ask` gives in-process for the same input and generation settings, and that every job's webhook arrived
 * at least once, signed, with one webhook-id per event (retries repeat it). Zero lost jobs in every scenario.
 *
 *   npm run test:faults
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2llmModel } from '@lib/model-runtime';
import { GenerationParams, loadConfig, Task } from '@lib/shared';
import {
  apiClient,
  sleep,
  startProcessStack,
  startWebhookReceiver,
  syntheticText,
  waitForAll,
  type ApiClient,
  type ProcessStack,
  type WebhookReceiver,
} from './harness.js';

interface Submitted {
  id: string;
  text: string;
  task: { type: 'qa'; question: string } | { type: 'summarize' };
  generation: { maxNewTokens: number; minNewTokens?: number };
}

let stack: ProcessStack;
let api: ApiClient;
let hooks: WebhookReceiver;
let model: E2llmModel;
const expected = new Map<string, string>();
/** Every job the API accepted in this file, for the closing "none lost" check. */
const allAccepted: Submitted[] = [];
/** Figures per scenario, printed at the end (docs/reliability.md quotes them). */
const figures: Record<string, unknown>[] = [];

async function expectedAnswer(s: Submitted): Promise<string> {
  const key = JSON.stringify([s.text, s.task, s.generation]);
  if (!expected.has(key)) {
    const local = await model.ask(s.text, Task.parse(s.task), GenerationParams.parse(s.generation));
    expected.set(key, local.answer);
  }
  return expected.get(key)!;
}

async function submit(text: string, task: Submitted['task'], generation: Submitted['generation'], opts: { timeoutMs?: number } = {}) {
  const res = await api.post('/v1/jobs', { text, task, generation, webhook: { url: hooks.url } }, opts);
  if (res.status === 202) {
    const s: Submitted = { id: res.body.id, text, task, generation };
    allAccepted.push(s);
    return { res, job: s };
  }
  return { res, job: undefined };
}

async function submitOk(text: string, task: Submitted['task'], generation: Submitted['generation']): Promise<Submitted> {
  const { res, job } = await submit(text, task, generation);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return job!;
}

/** Every job succeeded with the in-process answer; every job's webhook arrived (at least once, one id, signed). */
async function verify(name: string, jobs: Submitted[], t0: number, extra: Record<string, unknown> = {}) {
  const records = await waitForAll(
    api,
    jobs.map((j) => j.id),
    60_000,
  );
  const succeededAt = Date.now();
  for (const j of jobs) {
    const r = records.get(j.id);
    expect(r.status, `${j.id}: ${JSON.stringify(r.error)}`).toBe('succeeded');
    expect(r.result.text, `${j.id} answer`).toBe(await expectedAnswer(j));
  }
  const wh = new Webhook(stack.webhookSecret);
  const deadline = Date.now() + 30_000;
  const missing = () => jobs.filter((j) => !hooks.byId().has(`msg_${j.id}_succeeded`));
  while (missing().length > 0 && Date.now() < deadline) await sleep(200);
  expect(missing().map((j) => j.id)).toEqual([]);
  let duplicates = 0;
  for (const j of jobs) {
    const deliveries = hooks.byId().get(`msg_${j.id}_succeeded`)!;
    duplicates += deliveries.length - 1;
    for (const d of deliveries) {
      const event = wh.verify(d.body, d.headers as Record<string, string>) as any;
      expect(event).toMatchObject({ type: 'job.succeeded', data: { id: j.id, status: 'succeeded' } });
    }
  }
  // No other event (failed, cancelled) for these jobs.
  for (const id of hooks.byId().keys()) {
    const j = jobs.find((x) => id.startsWith(`msg_${x.id}_`));
    if (j) expect(id).toBe(`msg_${j.id}_succeeded`);
  }
  const row = { scenario: name, accepted: jobs.length, succeeded: jobs.length, lost: 0, webhookDuplicates: duplicates, allSucceededAfterMs: succeededAt - t0, ...extra };
  figures.push(row);
  console.log(`[faults] ${JSON.stringify(row)}`);
}

/** The one error shape: {error: {code, message, details?}}. */
function expectError(body: any, code: string) {
  expect(body).toEqual({ error: { code, message: expect.any(String), ...(body?.error?.details ? { details: expect.anything() } : {}) } });
}

async function getJob(id: string) {
  return (await api.get(`/v1/jobs/${id}`, { timeoutMs: 5000 })).body;
}

beforeAll(async () => {
  // Encode children of 16 chunks, so a long document is many children and the kill lands mid-flow.
  stack = await startProcessStack({ ENCODE_JOB_MAX_CHUNKS: '16' });
  api = apiClient(stack.baseUrl, stack.apiKey);
  hooks = await startWebhookReceiver();
  model = await E2llmModel.load(loadConfig({}, {}));
}, 120_000);

afterAll(async () => {
  if (figures.length) console.log(`[faults] summary\n${figures.map((f) => JSON.stringify(f)).join('\n')}`);
  await model?.release();
  await hooks?.stop();
  await stack?.stop();
});

describe('fault injection (roles as processes, real Redis and S3)', () => {
  it('(a) the encoder worker is SIGKILLed mid-flow and restarted: its batches are retaken', async () => {
    const t0 = Date.now();
    const jobs = [
      await submitOk(syntheticText(101, 100_000), { type: 'qa', question: 'Which harbour had the lantern?' }, { maxNewTokens: 8 }),
      await submitOk(syntheticText(102, 100_000), { type: 'summarize' }, { maxNewTokens: 8 }),
    ];
    // Wait until some, not all, chunks are encoded, then kill.
    let progress: any;
    for (;;) {
      progress = await getJob(jobs[0]!.id);
      if (progress.progress.chunksEncoded >= 32) break;
      if (Date.now() - t0 > 40_000) throw new Error(`no encoding progress: ${JSON.stringify(progress)}\n${stack.encoder.log.text}`);
      await sleep(50);
    }
    await stack.encoder.kill('SIGKILL');
    const atKill = [progress.progress, (await getJob(jobs[1]!.id)).progress];
    expect(atKill[0].chunksEncoded + atKill[1].chunksEncoded).toBeLessThan(atKill[0].chunksTotal + atKill[1].chunksTotal);
    await sleep(1000);
    await stack.encoder.start();
    await verify('a: SIGKILL encoder mid-flow', jobs, t0, { chunksTotal: atKill[0].chunksTotal + atKill[1].chunksTotal, chunksEncodedAtKill: atKill[0].chunksEncoded + atKill[1].chunksEncoded });
  });

  it('(b) the decoder worker is SIGKILLed mid-generation and restarted: the generation is redone', async () => {
    const t0 = Date.now();
    const jobs = [
      // minNewTokens keeps the trained model from ending early, so the kill lands mid-generation.
      await submitOk(syntheticText(201, 4000), { type: 'summarize' }, { maxNewTokens: 800, minNewTokens: 800 }),
      await submitOk(syntheticText(202, 4000), { type: 'qa', question: 'What did the keeper record?' }, { maxNewTokens: 200 }),
    ];
    for (;;) {
      const j = await getJob(jobs[0]!.id);
      if (j.status === 'decoding') break;
      if (Date.now() - t0 > 30_000) throw new Error(`never decoding: ${JSON.stringify(j)}`);
      await sleep(50);
    }
    await sleep(700); // well into the 800-token generation (about 4 ms a token unloaded)
    const before = await getJob(jobs[0]!.id);
    expect(before.status).toBe('decoding');
    await stack.decoder.kill('SIGKILL');
    await sleep(1000);
    await stack.decoder.start();
    await verify('b: SIGKILL decoder mid-generation', jobs, t0);
  });

  it('(c) Redis is paused for 10 s (CLIENT PAUSE ALL on the suite\'s own Redis): nothing is lost', async () => {
    const t0 = Date.now();
    const jobs = [
      await submitOk(syntheticText(301, 20_000), { type: 'summarize' }, { maxNewTokens: 16 }),
      await submitOk(syntheticText(302, 20_000), { type: 'qa', question: 'Where was the granite quarry?' }, { maxNewTokens: 16 }),
      await submitOk(syntheticText(303, 20_000), { type: 'summarize' }, { maxNewTokens: 16 }),
    ];
    await sleep(300);
    let duringStatus = 0;
    let duringMs = 0;
    let retryAfter: string | null = null;
    expect(await stack.redis.cli('client', 'pause', '10000', 'ALL')).toBe('OK');
    const pausedAt = Date.now();
    try {
      // A submission while Redis is paused: either 503 QUEUE_UNAVAILABLE or accepted (and then it must complete).
      const during = await submit(syntheticText(304, 2000), { type: 'summarize' }, { maxNewTokens: 4 }, { timeoutMs: 20_000 }).catch((err) => ({ res: { status: 0, body: String(err), headers: new Headers() }, job: undefined }));
      duringStatus = during.res.status;
      if (during.job) jobs.push(during.job);
      else {
        expect(duringStatus, JSON.stringify(during.res.body)).toBe(503);
        expectError(during.res.body, 'QUEUE_UNAVAILABLE');
        retryAfter = during.res.headers.get('retry-after');
      }
      duringMs = Date.now() - pausedAt;
    } finally {
      await sleep(Math.max(0, 10_500 - (Date.now() - pausedAt)));
    }
    await verify('c: Redis CLIENT PAUSE 10 s', jobs, t0, { submissionDuringPause: duringStatus, submissionDuringPauseMs: duringMs, retryAfter });
  });

  it('(d) the S3 server is stopped for 10 s and started again on the same port: nothing is lost', async () => {
    const t0 = Date.now();
    const jobs = [
      await submitOk(syntheticText(401, 60_000), { type: 'summarize' }, { maxNewTokens: 16 }),
      await submitOk(syntheticText(402, 20_000), { type: 'qa', question: 'Which engine was in the mill?' }, { maxNewTokens: 16 }),
      await submitOk(syntheticText(403, 20_000), { type: 'summarize' }, { maxNewTokens: 16 }),
    ];
    await sleep(300);
    await stack.s3.stop();
    const stoppedAt = Date.now();
    let outage: Record<string, unknown> = {};
    try {
      const during = await submit(syntheticText(404, 2000), { type: 'summarize' }, { maxNewTokens: 4 }, { timeoutMs: 20_000 });
      if (during.job) jobs.push(during.job);
      else {
        expect(during.res.status, JSON.stringify(during.res.body)).toBe(503);
        expectError(during.res.body, 'STORAGE_UNAVAILABLE');
      }
      const ready = await api.get('/readyz', { timeoutMs: 10_000 });
      outage = { submissionDuringOutage: during.res.status, code: during.res.body?.error?.code, retryAfter: during.res.headers.get('retry-after'), readyzDuringOutage: ready.status };
      await sleep(Math.max(0, 10_000 - (Date.now() - stoppedAt)));
    } finally {
      await stack.s3.start();
    }
    await verify('d: S3 down 10 s', jobs, t0, outage);
  });

  it('(e) the webhook receiver is down while jobs finish, then comes back: every webhook arrives', async () => {
    await hooks.stop();
    const t0 = Date.now();
    const jobs: Submitted[] = [];
    try {
      for (let i = 0; i < 3; i++) jobs.push(await submitOk(syntheticText(501 + i, 3000), { type: 'summarize' }, { maxNewTokens: 8 }));
      const records = await waitForAll(
        api,
        jobs.map((j) => j.id),
        40_000,
      );
      for (const r of records.values()) expect(r.status).toBe('succeeded');
      await sleep(4000); // deliveries fail (connection refused) and back off
      for (const j of jobs) expect(hooks.byId().has(`msg_${j.id}_succeeded`)).toBe(false);
    } finally {
      await hooks.start();
    }
    await verify('e: webhook receiver down', jobs, t0);
  });

  it('(f) the encoder worker gets SIGTERM mid-flow: it drains and exits 0, and the flow completes after a restart', async () => {
    const t0 = Date.now();
    const jobs = [await submitOk(syntheticText(601, 60_000), { type: 'summarize' }, { maxNewTokens: 8 })];
    for (;;) {
      const j = await getJob(jobs[0]!.id);
      if (j.progress.chunksEncoded >= 16) break;
      if (Date.now() - t0 > 30_000) throw new Error(`no encoding progress: ${JSON.stringify(j)}`);
      await sleep(50);
    }
    const signalledAt = Date.now();
    const exit = await stack.encoder.kill('SIGTERM');
    const drainMs = Date.now() - signalledAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(drainMs).toBeLessThan(15_000);
    await stack.encoder.start();
    await verify('f: SIGTERM encoder mid-flow', jobs, t0, { exitCode: exit?.code, drainMs });
  });

  it('no accepted job was lost in any scenario', async () => {
    const records = await waitForAll(
      api,
      allAccepted.map((j) => j.id),
      10_000,
    );
    const notSucceeded = [...records.values()].filter((r) => r.status !== 'succeeded').map((r) => `${r.id}:${r.status}`);
    expect(notSucceeded).toEqual([]);
    figures.push({ scenario: 'total', accepted: allAccepted.length, succeeded: allAccepted.length - notSucceeded.length, lost: notSucceeded.length });
  });
});
