import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metrics } from '@lib/job-store';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { startStack, webhookReceiver, type Stack } from './stack.js';

const SAMPLE = fileURLToPath(new URL('../../samples/gpl-3.0.txt', import.meta.url));
const MAX_ITEMS = 25;

let stack: Stack;
let http: ReturnType<typeof request>;
let sample: string;

/** Every batch, result line and error body here is checked against the OpenAPI document the API serves. */
const contract: Record<'Batch' | 'BatchList' | 'BatchResultLine' | 'Job' | 'Error', ValidateFunction> = {} as never;
function conforms(kind: keyof typeof contract, body: unknown): void {
  const validate = contract[kind];
  if (!validate(body)) throw new Error(`${kind} breaks the OpenAPI contract: ${JSON.stringify(validate.errors?.slice(0, 3))}\n${JSON.stringify(body).slice(0, 500)}`);
}

const ENDED = ['completed', 'cancelled'];
async function waitForBatch(id: string, seen: number[] = [], timeoutMs = 300_000): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const res = await http.get(`/v1/batches/${id}`).expect(200);
    conforms('Batch', res.body);
    const lines = await results(id);
    seen.push(lines.length);
    if (ENDED.includes(res.body.status)) return res.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`batch ${id} still ${res.body.status}: ${JSON.stringify(res.body.counts)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function results(id: string, offset?: number): Promise<any[]> {
  const res = await http
    .get(`/v1/batches/${id}/results${offset === undefined ? '' : `?offset=${offset}`}`)
    .buffer(true)
    .parse((r, cb) => {
      let text = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (text += c));
      r.on('end', () => cb(null, text));
    })
    .expect(200);
  expect(res.headers['content-type']).toMatch(/^application\/jsonl/);
  const text = res.body as string;
  if (text !== '') expect(text.endsWith('\n')).toBe(true);
  const lines = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
  for (const line of lines) conforms('BatchResultLine', line);
  return lines;
}

async function waitForJob(id: string): Promise<any> {
  const t0 = Date.now();
  for (;;) {
    const res = await http.get(`/v1/jobs/${id}`).expect(200);
    conforms('Job', res.body);
    if (['succeeded', 'failed', 'cancelled'].includes(res.body.status)) return res.body;
    if (Date.now() - t0 > 120_000) throw new Error(`job ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function cacheMisses(): Promise<number> {
  return (await metrics.softPromptCache.get()).values.find((v) => v.labels.result === 'miss')?.value ?? 0;
}

const QUESTIONS = [
  'Which version of the licence may you choose?',
  'What is conveyed?',
  'Who is a licensee?',
  'What does "the Program" mean?',
  'What is the source code of a work?',
  'What are the System Libraries?',
  'What must you do when you convey verbatim copies?',
  'May you charge a price for copies?',
  'What is a User Product?',
  'What are Installation Information?',
  'What are additional permissions?',
  'When is the licence terminated?',
  'Must you accept this licence to receive a copy?',
  'What is an entity transaction?',
  'What is a contributor?',
  'What is a patent licence?',
  'What happens if conditions are imposed on you?',
  'May the Free Software Foundation publish new versions?',
  'Is there a warranty for the program?',
  'Who is liable for damages?',
];

beforeAll(async () => {
  // Four encode steps at once: a batch's item jobs must still find every chunk encoded by the document, never encode
  // one beside it (they wait for the document: Pipeline.holdForDocument).
  // MAX_NEW_TOKENS_LIMIT as large as the window: an item can then be too long for the window with its document.
  stack = await startStack({ batchMaxItems: MAX_ITEMS, encoderConcurrency: 4, maxNewTokensLimit: 4096 });
  http = request(stack.api.url);
  sample = await readFile(SAMPLE, 'utf8');
  const doc = (await http.get('/docs/openapi.json').expect(200)).body;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  (formats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
  for (const kind of ['Batch', 'BatchList', 'BatchResultLine', 'Job', 'Error'] as const) contract[kind] = ajv.compile(doc.components.schemas[kind]);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

describe('batches', () => {
  it('20 questions over one document: each chunk encoded once, 20 results equal to 20 single jobs, one webhook', async () => {
    const hooks = await webhookReceiver();
    try {
      const text = `${sample}\nBatch edition ${Date.now()}.`;
      const generation = { maxNewTokens: 8 };
      const items = QUESTIONS.map((question, i) => ({ custom_id: `q${i + 1}`, task: { type: 'qa', question }, generation }));
      const missesBefore = await cacheMisses();
      const created = await http.post('/v1/batches').send({ text, items, webhook: { url: hooks.url }, metadata: { run: 'e2e' } }).expect(202);
      conforms('Batch', created.body);
      expect(created.headers.location).toBe(`/v1/batches/${created.body.id}`);
      expect(created.body).toMatchObject({ object: 'batch', status: 'in_progress', metadata: { run: 'e2e' }, counts: { total: 20, pending: 20, succeeded: 0 } });

      const seen: number[] = [];
      const done = await waitForBatch(created.body.id, seen);
      expect(done).toMatchObject({ status: 'completed', counts: { total: 20, pending: 0, succeeded: 20, failed: 0, cancelled: 0, expired: 0 } });
      expect(done.finishedAt).not.toBeNull();
      // The results file only grows.
      expect(seen).toEqual([...seen].sort((a, b) => a - b));

      const lines = await results(created.body.id);
      expect(lines).toHaveLength(20);
      expect(lines.map((l) => l.custom_id).sort()).toEqual(items.map((i) => i.custom_id).sort());
      expect(lines.every((l) => l.status === 'succeeded' && l.error === null && l.result !== null)).toBe(true);
      expect((await results(created.body.id, 15)).map((l) => l.jobId)).toEqual(lines.slice(15).map((l) => l.jobId));

      // The document was encoded once: the encoder missed exactly its chunks, and no item job encoded any.
      const doc = (await http.get(`/v1/documents/${done.documentId}`).expect(200)).body;
      expect(doc.status).toBe('ready');
      expect((await cacheMisses()) - missesBefore).toBe(doc.chunks);
      for (const line of lines) {
        const job = await waitForJob(line.jobId);
        expect(job).toMatchObject({ status: 'succeeded', documentId: done.documentId, metadata: { batchId: created.body.id, custom_id: line.custom_id } });
        expect(job.progress).toEqual({ chunksTotal: doc.chunks, chunksEncoded: 0, chunksCached: doc.chunks });
        expect(job.task).toEqual(items[line.index]!.task);
        expect(line.result).toEqual(job.result);
      }

      // The same 20 questions as 20 single jobs on the text: the same answers.
      const singles: string[] = [];
      for (const item of items) singles.push((await http.post('/v1/jobs').send({ text, task: item.task, generation }).expect(202)).body.id);
      for (const [i, id] of singles.entries()) {
        const single = await waitForJob(id);
        const line = lines.find((l) => l.index === i)!;
        expect(single.status).toBe('succeeded');
        expect(line.custom_id).toBe(items[i]!.custom_id);
        expect(line.result.text).toBe(single.result.text);
        expect(line.result.finishReason).toBe(single.result.finishReason);
        expect(line.result.evidence).toEqual(single.result.evidence);
      }
      expect(new Set(lines.map((l) => l.result.text)).size).toBeGreaterThan(1);

      // One webhook for the batch (none for its items), signed as job webhooks are.
      const t0 = Date.now();
      while (hooks.received.length === 0 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 100));
      await new Promise((r) => setTimeout(r, 1000));
      expect(hooks.received).toHaveLength(1);
      const { body, headers } = hooks.received[0]!;
      const event = new Webhook(stack.config.webhookSecret!).verify(body, headers as Record<string, string>) as any;
      expect(event).toMatchObject({ type: 'batch.completed', data: { id: created.body.id, status: 'completed', counts: { succeeded: 20 } } });
      conforms('Batch', event.data);
      expect(headers['webhook-id']).toBe(`msg_${created.body.id}_completed`);

      // A batch on the stored document by id encodes nothing.
      const before = await cacheMisses();
      // (its items as JSONL text in the JSON body)
      const again = await http.post('/v1/batches').send({ documentId: done.documentId, items: items.slice(0, 2).map((i) => JSON.stringify(i)).join('\n') }).expect(202);
      expect(again.body.documentId).toBe(done.documentId);
      expect((await waitForBatch(again.body.id)).counts.succeeded).toBe(2);
      expect(await cacheMisses()).toBe(before);

      // Both listed, newest first, one a page.
      const first = await http.get('/v1/batches?limit=1').expect(200);
      conforms('BatchList', first.body);
      expect(first.body).toMatchObject({ object: 'list', hasMore: true, data: [{ id: again.body.id, status: 'completed' }] });
      const second = await http.get(`/v1/batches?limit=1&after=${first.body.nextCursor}`).expect(200);
      conforms('BatchList', second.body);
      expect(second.body.data.map((b: any) => b.id)).toEqual([created.body.id]);
    } finally {
      hooks.close();
    }
  }, 600_000);

  it('a JSONL upload with a file; cancel keeps the items that ended', async () => {
    const jsonl = [
      JSON.stringify({ custom_id: 'short', task: { type: 'qa', question: 'What is conveyed?' }, generation: { maxNewTokens: 2 } }),
      '',
      ...[1, 2, 3, 4].map((n) => JSON.stringify({ custom_id: `long-${n}`, task: { type: 'summarize' }, generation: { maxNewTokens: 1000 } })),
    ].join('\n');
    const created = await http
      .post('/v1/batches')
      .attach('file', Buffer.from(`${sample}\nUpload ${Date.now()}.`), { filename: 'gpl.txt', contentType: 'text/plain' })
      .field('items', jsonl)
      .expect(202);
    conforms('Batch', created.body);
    expect(created.body.counts).toMatchObject({ total: 5, pending: 5 });
    // Wait for the first item to end, then cancel the rest.
    const t0 = Date.now();
    let before: any[] = [];
    while (before.length === 0 && Date.now() - t0 < 120_000) {
      await new Promise((r) => setTimeout(r, 50));
      before = await results(created.body.id);
    }
    const cancelled = await http.post(`/v1/batches/${created.body.id}/cancel`).expect(200);
    conforms('Batch', cancelled.body);
    expect(['cancelling', 'cancelled']).toContain(cancelled.body.status);
    expect(cancelled.body.cancelRequestedAt).not.toBeNull();
    const done = await waitForBatch(created.body.id);
    expect(done.status).toBe('cancelled');
    expect(done.counts.succeeded).toBeGreaterThanOrEqual(1);
    expect(done.counts.cancelled).toBeGreaterThanOrEqual(1);
    expect(done.counts.succeeded + done.counts.cancelled).toBe(5);
    const lines = await results(created.body.id);
    expect(lines).toHaveLength(5);
    // The items that had ended before the cancel keep their lines, unchanged and first.
    expect(lines.slice(0, before.length)).toEqual(before);
    for (const line of before) expect(line).toMatchObject({ status: 'succeeded', error: null, result: { text: expect.any(String) } });
    expect(lines.map((l) => l.index).sort()).toEqual([0, 1, 2, 3, 4]);
    for (const line of lines.filter((l) => l.status === 'cancelled')) expect(line).toMatchObject({ result: null, error: { code: 'JOB_CANCELLED' } });
    const again = await http.post(`/v1/batches/${created.body.id}/cancel`).expect(409);
    conforms('Error', again.body);
  }, 300_000);

  it('goes with its document: DELETE /v1/documents/:id deletes the batch, its jobs and its result lines; an Idempotency-Key replays it until then', async () => {
    const body = { text: `A short note ${Date.now()}.`, items: [{ custom_id: 'a', task: { type: 'summarize' }, generation: { maxNewTokens: 2 } }] };
    const key = `batch-${Date.now()}`;
    const created = await http.post('/v1/batches').set('Idempotency-Key', key).send(body).expect(202);
    expect(created.headers['idempotent-replayed']).toBeUndefined();
    const replay = await http.post('/v1/batches').set('Idempotency-Key', key).send(body).expect(202);
    expect(replay.headers['idempotent-replayed']).toBe('true');
    expect(replay.body.id).toBe(created.body.id);
    conforms('Batch', replay.body);
    conforms('Error', (await http.post('/v1/batches').set('Idempotency-Key', key).send({ ...body, metadata: { other: 'body' } }).expect(409)).body);
    const done = await waitForBatch(created.body.id);
    const [line] = await results(created.body.id);
    const deleted = await http.delete(`/v1/documents/${done.documentId}`).expect(200);
    expect(deleted.body.jobs).toEqual([line.jobId]);
    conforms('Error', (await http.get(`/v1/batches/${created.body.id}`).expect(404)).body);
    await http.get(`/v1/batches/${created.body.id}/results`).expect(404);
    await http.get(`/v1/jobs/${line.jobId}`).expect(404);
    expect((await http.get('/v1/batches?limit=100').expect(200)).body.data.map((b: any) => b.id)).not.toContain(created.body.id);
    // The key is free again: the same request makes a new batch.
    const again = await http.post('/v1/batches').set('Idempotency-Key', key).send(body).expect(202);
    expect(again.body.id).not.toBe(created.body.id);
    expect(again.headers['idempotent-replayed']).toBeUndefined();
  });

  it('an item too long for the window with the document: 422 naming it, and the document stored for the batch is deleted', async () => {
    const before = (await http.get('/v1/documents?limit=100').expect(200)).body.data.length;
    const items = [
      { custom_id: 'fits', task: { type: 'qa', question: 'What is conveyed?' }, generation: { maxNewTokens: 4 } },
      { custom_id: 'too-long', task: { type: 'summarize' }, generation: { maxNewTokens: 4090 } },
    ];
    const res = await http.post('/v1/batches').send({ text: `${sample}\nToo long ${Date.now()}.`, items }).expect(422);
    conforms('Error', res.body);
    expect(res.body.error.code).toBe('CONTEXT_TOO_LONG');
    expect(res.body.error.message).toMatch(/^items\[1\] \(custom_id "too-long"\): the document makes/);
    expect(res.body.error.details).toMatchObject({ index: 1, custom_id: 'too-long' });
    expect((await http.get('/v1/documents?limit=100').expect(200)).body.data.length).toBe(before);
  });

  describe('bad input: 400 naming the item', () => {
    const item = (custom_id: string, question = 'What is conveyed?') => ({ custom_id, task: { type: 'qa', question } });
    const cases: [string, () => request.Test, number, string, RegExp, Record<string, unknown>?][] = [
      ['duplicate custom_ids', () => http.post('/v1/batches').send({ text: 'hello', items: [item('a'), item('b'), item('a')] }), 400, 'INPUT_INVALID', /items\[2\] \(custom_id "a"\).*items\[0\]/, { index: 2, custom_id: 'a' }],
      ['too many items', () => http.post('/v1/batches').send({ text: 'hello', items: Array.from({ length: MAX_ITEMS + 1 }, (_, i) => item(`q${i}`)) }), 400, 'INPUT_INVALID', new RegExp(`at most ${MAX_ITEMS} items.*BATCH_MAX_ITEMS.*${MAX_ITEMS + 1}`)],
      ['a qa task without a question', () => http.post('/v1/batches').send({ text: 'hello', items: [item('a'), { custom_id: 'b', task: { type: 'qa' } }] }), 400, 'INPUT_INVALID', /items\[1\] \(custom_id "b"\): task/, { index: 1, custom_id: 'b' }],
      ['an unknown task type', () => http.post('/v1/batches').send({ text: 'hello', items: [{ custom_id: 'x', task: { type: 'translate' } }] }), 400, 'INPUT_INVALID', /items\[0\] \(custom_id "x"\)/, { index: 0, custom_id: 'x' }],
      ['an item without a custom_id', () => http.post('/v1/batches').send({ text: 'hello', items: [item('a'), { task: { type: 'summarize' } }] }), 400, 'INPUT_INVALID', /items\[1\]: custom_id/, { index: 1 }],
      ['a question over the limit', () => http.post('/v1/batches').send({ text: 'hello', items: [item('a'), item('long', 'q'.repeat(5000))] }), 400, 'QUESTION_TOO_LONG', /items\[1\] \(custom_id "long"\)/, { index: 1, custom_id: 'long' }],
      ['too many new tokens', () => http.post('/v1/batches').send({ text: 'hello', items: [{ ...item('a'), generation: { maxNewTokens: 100000 } }] }), 400, 'INPUT_INVALID', /items\[0\] \(custom_id "a"\): generation.maxNewTokens/],
      ['a JSONL line that is not JSON', () => http.post('/v1/batches').field('text', 'hello').field('items', `${JSON.stringify(item('a'))}\n{not json`), 400, 'INPUT_INVALID', /items\[1\]: line 2 of items/, { index: 1 }],
      ['no items', () => http.post('/v1/batches').send({ text: 'hello', items: [] }), 400, 'INPUT_INVALID', /at least one item/],
      ['two documents', () => http.post('/v1/batches').send({ text: 'hello', documentId: 'doc_x', items: [item('a')] }), 400, 'INPUT_INVALID', /one document/],
      ['an unknown stored document', () => http.post('/v1/batches').send({ documentId: 'doc_000000000aaaaaaaaaaaaaaaaaaaa', items: [item('a')] }), 404, 'NOT_FOUND', /no document/],
      ['an unknown batch', () => http.get('/v1/batches/bat_000000000aaaaaaaaaaaaaaaaaaaa'), 404, 'NOT_FOUND', /no batch/],
      ['a bad list cursor', () => http.get('/v1/batches?after=bm90LWFuLWlk'), 400, 'INPUT_INVALID', /cursor/],
      ['a bad results offset', () => http.get('/v1/batches/bat_000000000aaaaaaaaaaaaaaaaaaaa/results?offset=-1'), 400, 'INPUT_INVALID', /offset/],
    ];
    for (const [name, send, status, code, message, details] of cases) {
      it(name, async () => {
        const res = await send();
        expect(res.status).toBe(status);
        conforms('Error', res.body);
        expect(res.body.error.code).toBe(code);
        expect(res.body.error.message).toMatch(message);
        if (details) expect(res.body.error.details).toMatchObject(details);
      });
    }
  });
});

describe('batches and tenancy', () => {
  const KEYS = { alpha: 'alpha-key-0123456789abcdef', beta: 'beta-key-0123456789abcdef' };
  let other: Stack;
  let api: ReturnType<typeof request>;
  beforeAll(async () => {
    other = await startStack({ apiKeys: `alpha:${KEYS.alpha},beta:${KEYS.beta}` } as unknown as Partial<Stack['config']>);
    api = request(other.api.url);
  }, 120_000);
  afterAll(async () => other?.stop());

  it("keeps one tenant's batches and documents from another (404), and needs a key (401)", async () => {
    const alpha = `Bearer ${KEYS.alpha}`;
    const beta = `Bearer ${KEYS.beta}`;
    const items = [{ custom_id: 'a', task: { type: 'summarize' }, generation: { maxNewTokens: 2 } }];
    expect((await api.post('/v1/batches').send({ text: 'A note.', items })).status).toBe(401);
    const created = await api.post('/v1/batches').set('Authorization', alpha).send({ text: `A note for alpha ${Date.now()}.`, items }).expect(202);
    const id = created.body.id;
    for (const res of [
      await api.get(`/v1/batches/${id}`).set('Authorization', beta),
      await api.get(`/v1/batches/${id}/results`).set('Authorization', beta),
      await api.post(`/v1/batches/${id}/cancel`).set('Authorization', beta),
      await api.post('/v1/batches').set('Authorization', beta).send({ documentId: created.body.documentId, items }),
    ]) {
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
    }
    for (let i = 0; i < 600 && (await api.get(`/v1/batches/${id}`).set('Authorization', alpha)).body.status !== 'completed'; i++) await new Promise((r) => setTimeout(r, 100));
    expect((await api.get(`/v1/batches/${id}`).set('Authorization', alpha).expect(200)).body.counts.succeeded).toBe(1);
  });
});
