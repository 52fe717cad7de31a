import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractText } from '@lib/extract';
import { makeDocx, makePdf } from '@lib/extract/testing';
import { E2llmModel } from '@lib/model-runtime';
import { createBlobStore } from '@lib/blob-store';
import { DocumentChunks, GenerationParams, Task, documentChunksKey, sourceKey } from '@lib/shared';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { startStack, webhookReceiver, type Stack } from './stack.js';

const SAMPLE = fileURLToPath(new URL('../../samples/gpl-3.0.txt', import.meta.url));

let stack: Stack;
let http: ReturnType<typeof request>;
let model: E2llmModel;
let sample: string;

/**
 * The contract test: every job, list page and error body this suite receives is checked against the OpenAPI document
 * the API serves (generated from the zod schemas in libs/shared), with a JSON Schema 2020-12 validator.
 */
const contract: Record<'Job' | 'JobList' | 'Error', ValidateFunction> = {} as never;
const checked = { Job: 0, JobList: 0, Error: 0 };
function conforms(kind: keyof typeof contract, body: unknown): void {
  const validate = contract[kind];
  if (!validate(body)) throw new Error(`${kind} response breaks the OpenAPI contract: ${JSON.stringify(validate.errors?.slice(0, 3))}\n${JSON.stringify(body).slice(0, 500)}`);
  checked[kind]++;
}

async function waitFor(id: string, until: (job: any) => boolean = (j) => ['succeeded', 'failed', 'cancelled'].includes(j.status), timeoutMs = 60_000) {
  const t0 = Date.now();
  for (;;) {
    const res = await http.get(`/v1/jobs/${id}`).expect(200);
    conforms('Job', res.body);
    if (until(res.body)) return res.body;
    if (Date.now() - t0 > timeoutMs) throw new Error(`job ${id} still ${res.body.status}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  stack = await startStack();
  http = request(stack.api.url);
  model = await E2llmModel.load(stack.config);
  sample = await readFile(SAMPLE, 'utf8');
  const doc = (await http.get('/docs/openapi.json').expect(200)).body;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  // ajv-formats is CommonJS: under NodeNext its default import is the module object.
  (formats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
  for (const kind of ['Job', 'JobList', 'Error'] as const) contract[kind] = ajv.compile(doc.components.schemas[kind]);
}, 120_000);

afterAll(async () => {
  await model?.release();
  await stack?.stop();
});

describe('jobs end to end (API, BullMQ flow, workers, S3)', () => {
  it('a text job succeeds with the answer e2llm ask gives', async () => {
    const task = { type: 'qa', question: 'Which version of the licence may you choose?' } as const;
    const created = await http.post('/v1/jobs').send({ text: sample, task, generation: { maxNewTokens: 24 } }).expect(202);
    expect(created.body).toMatchObject({ object: 'job', status: 'queued', progress: { chunksTotal: expect.any(Number) } });
    expect(created.headers.location).toBe(`/v1/jobs/${created.body.id}`);
    const done = await waitFor(created.body.id);
    expect(done.status).toBe('succeeded');
    const local = await model.ask(sample, Task.parse(task), GenerationParams.parse({ maxNewTokens: 24 }));
    expect(done.result.text).toBe(local.answer);
    expect(done.result.usage).toEqual(local.usage);
    // Grounding: the same chunks expanded and the same evidence, read from the stored source by the decoder worker.
    expect(local.usage.expandedChunks).toBeGreaterThan(0);
    expect(done.result.evidence).toEqual(local.evidence);
    expect(done.result.evidence[0]).toMatchObject({ expanded: true, text: sample.slice(done.result.evidence[0].charStart, done.result.evidence[0].charEnd) });
    expect(done.progress).toEqual({ chunksTotal: local.usage.chunks, chunksEncoded: local.usage.chunks, chunksCached: 0 });
    expect(done.result.finishReason).toBe(local.finishReason);
  });

  it('a second job on the same document encodes zero chunks', async () => {
    const task = { type: 'summarize' } as const;
    const created = await http.post('/v1/jobs').send({ text: sample, task, generation: { maxNewTokens: 8 } }).expect(202);
    const done = await waitFor(created.body.id);
    expect(done.status).toBe('succeeded');
    expect(done.progress.chunksEncoded).toBe(0);
    expect(done.progress.chunksCached).toBe(done.progress.chunksTotal);
  });

  it('a PDF job succeeds with the answer e2llm ask gives for its text', async () => {
    const filler = Array.from({ length: 8 }, (_, i) => `Page ${i + 1} of the harbour survey lists the tides and the moorings.`);
    const pdf = makePdf([...filler, 'The northern lighthouse keeper was named Ada Lovelace.', 'She kept the lamp burning for forty years.']);
    const task = { type: 'qa', question: 'Who kept the lighthouse?' };
    const created = await http
      .post('/v1/jobs')
      .field('task', JSON.stringify(task))
      .field('generation', JSON.stringify({ maxNewTokens: 12 }))
      .attach('file', Buffer.from(pdf), { filename: 'keeper.pdf', contentType: 'application/pdf' })
      .expect(202);
    const done = await waitFor(created.body.id);
    expect(done.status).toBe('succeeded');
    const text = await extractText(pdf, 'pdf', { maxChars: 1e6, maxPdfPages: 10, maxDocxUncompressedBytes: 1e7, timeoutMs: 10_000 });
    const local = await model.ask(text, Task.parse(task), GenerationParams.parse({ maxNewTokens: 12 }));
    expect(done.result.text).toBe(local.answer);
    // Evidence names the page its chunk starts on (pages end with form feeds in the extracted text).
    expect(done.result.evidence).toEqual(local.evidence);
    const top = done.result.evidence[0];
    expect(top.text).toContain('lighthouse keeper');
    expect(top.page).toBe(text.slice(0, top.charStart).split('\f').length);
    expect(top.page).toBeGreaterThan(5);
  });

  it('a DOCX upload is read too', async () => {
    const docx = makeDocx(['First paragraph about tides.', 'Second paragraph about moons.']);
    const created = await http
      .post('/v1/jobs')
      .field('task', JSON.stringify({ type: 'reconstruct' }))
      .field('generation', JSON.stringify({ maxNewTokens: 4 }))
      .attach('file', Buffer.from(docx), { filename: 'tides.docx' })
      .expect(202);
    expect((await waitFor(created.body.id)).status).toBe('succeeded');
  });

  it('streams status, progress and text as server-sent events', async () => {
    const created = await http.post('/v1/jobs').send({ text: `${sample}\nA fresh tail so some chunks encode.`, task: { type: 'summarize' }, generation: { maxNewTokens: 16 } }).expect(202);
    const res = await http.get(`/v1/jobs/${created.body.id}/events`).buffer(true).parse((r, cb) => {
      let data = '';
      r.on('data', (c: Buffer) => (data += c.toString()));
      r.on('end', () => cb(null, data));
    });
    expect(res.headers['content-type']).toMatch(/text\/event-stream/);
    const events = String(res.body).trim().split('\n\n').map((block) => {
      // The space after the colon is optional in the SSE format (better-sse writes none).
      const type = /^event: ?(.*)$/m.exec(block)?.[1];
      const data = /^data: ?(.*)$/m.exec(block)?.[1];
      return { type, data: data ? JSON.parse(data) : null };
    });
    const last = events.at(-1)!;
    expect(last.type).toBe('status');
    expect(last.data.status).toBe('succeeded');
    const streamed = events.filter((e) => e.type === 'text').map((e) => e.data.delta).join('');
    expect(streamed).toBe(last.data.result.text);
  });

  it('an idempotent retry returns the same job; another body with the key is 409', async () => {
    const body = { text: 'A short note about idempotency keys.', task: { type: 'summarize' }, generation: { maxNewTokens: 2 } };
    const a = await http.post('/v1/jobs').set('Idempotency-Key', 'retry-key-1').send(body).expect(202);
    const b = await http.post('/v1/jobs').set('Idempotency-Key', 'retry-key-1').send(body).expect(202);
    expect(b.body.id).toBe(a.body.id);
    expect(b.headers['idempotent-replayed']).toBe('true');
    const c = await http.post('/v1/jobs').set('Idempotency-Key', 'retry-key-1').send({ ...body, text: 'Another text.' }).expect(409);
    expect(c.body.error.code).toBe('CONFLICT');
  });

  it('cancel works and the job stays cancelled', async () => {
    const created = await http.post('/v1/jobs').send({ text: `${sample}\nCancel me ${Date.now()}`, task: { type: 'summarize' }, generation: { maxNewTokens: 1000 } }).expect(202);
    const cancelled = await http.post(`/v1/jobs/${created.body.id}/cancel`).expect(200);
    expect(cancelled.body.status).toBe('cancelled');
    await new Promise((r) => setTimeout(r, 1500));
    const later = await http.get(`/v1/jobs/${created.body.id}`).expect(200);
    expect(later.body.status).toBe('cancelled');
    expect(later.body.error.code).toBe('JOB_CANCELLED');
    await http.post(`/v1/jobs/${created.body.id}/cancel`).expect(409);
  });

  it('delivers a signed webhook that verifies with standardwebhooks', async () => {
    const { url, received, close } = await webhookReceiver();
    try {
      const created = await http.post('/v1/jobs').send({ text: sample, task: { type: 'summarize' }, generation: { maxNewTokens: 4 }, webhook: { url }, metadata: { ticket: 'T-1' } }).expect(202);
      await waitFor(created.body.id);
      const t0 = Date.now();
      while (received.length === 0 && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 100));
      expect(received).toHaveLength(1);
      const { body, headers } = received[0]!;
      const event = new Webhook(stack.config.webhookSecret!).verify(body, headers as Record<string, string>) as any;
      expect(event).toMatchObject({ type: 'job.succeeded', data: { id: created.body.id, status: 'succeeded', metadata: { ticket: 'T-1' } } });
      expect(headers['webhook-id']).toBe(`msg_${created.body.id}_succeeded`);
      expect(() => new Webhook(stack.config.webhookSecret!).verify(body.replace('succeeded', 'failed'), headers as Record<string, string>)).toThrow();
    } finally {
      close();
    }
  });

  it('lists jobs newest first with a cursor', async () => {
    const first = await http.get('/v1/jobs?limit=2').expect(200);
    expect(first.body).toMatchObject({ object: 'list', hasMore: true });
    expect(first.body.data).toHaveLength(2);
    const second = await http.get(`/v1/jobs?limit=2&after=${first.body.nextCursor}`).expect(200);
    const ids = [...first.body.data, ...second.body.data].map((j: any) => j.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort().reverse()).toEqual(ids);
  });
});

describe('documents asked many questions', () => {
  it('stores and encodes once, then answers without re-encoding', async () => {
    const text = `${sample}\nDocument edition ${Date.now()}.`;
    const doc = await http.post('/v1/documents').send({ text, metadata: { name: 'gpl' } }).expect(202);
    expect(doc.body).toMatchObject({ object: 'document', status: 'encoding' });
    const t0 = Date.now();
    let status = 'encoding';
    while (status === 'encoding' && Date.now() - t0 < 60_000) {
      status = (await http.get(`/v1/documents/${doc.body.id}`).expect(200)).body.status;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe('ready');
    const job = await http.post(`/v1/documents/${doc.body.id}/jobs`).send({ task: { type: 'qa', question: 'What is conveyed?' }, generation: { maxNewTokens: 6 } }).expect(202);
    const done = await waitFor(job.body.id);
    expect(done).toMatchObject({ status: 'succeeded', documentId: doc.body.id, progress: { chunksEncoded: 0 } });
    expect(done.progress.chunksCached).toBe(done.progress.chunksTotal);

    // The API stored the chunk references with the source and reused them: same answer as e2llm ask on the text.
    const task = { type: 'qa', question: 'Which version of the licence may you choose?' } as const;
    const generation = { maxNewTokens: 12 };
    const local = await model.ask(text, Task.parse(task), GenerationParams.parse(generation));
    const blobs = createBlobStore(stack.config);
    const refs = DocumentChunks.parse(JSON.parse((await blobs.get(documentChunksKey(doc.body.id))).toString('utf8')));
    expect(refs.chunks).toBe(done.progress.chunksTotal);
    expect(refs.chars).toBe(text.length);
    const ask = async () => waitFor((await http.post(`/v1/documents/${doc.body.id}/jobs`).send({ task, generation }).expect(202)).body.id);
    const again = await ask();
    expect(again.status).toBe('succeeded');
    expect(again.result.text).toBe(local.answer);
    expect(again.result.usage).toEqual(local.usage);
    expect(again.result.evidence).toEqual(local.evidence);
    expect(again.progress.chunksEncoded).toBe(0);
    // Expansion off: the compressed path alone, still with evidence.
    const off = { maxNewTokens: 12, expand: { chunks: 0 } };
    const localOff = await model.ask(text, Task.parse(task), GenerationParams.parse(off));
    const unexpanded = await waitFor((await http.post(`/v1/documents/${doc.body.id}/jobs`).send({ task, generation: off }).expect(202)).body.id);
    expect(unexpanded.result).toMatchObject({ text: localOff.answer, usage: { expandedChunks: 0, expansionRequested: 0 }, evidence: localOff.evidence });
    expect(again.chars).toBe(text.length);
    // A document stored before chunk references were kept (none stored) is cut from its source, as before.
    await blobs.delete(documentChunksKey(doc.body.id));
    const legacy = await ask();
    expect(legacy.status).toBe('succeeded');
    expect(legacy.result.text).toBe(local.answer);
    // The stored text gone (expired, deleted): the job still ends, with a readable failure or answered from its soft
    // tokens and saying so; never a 5xx, never a job left waiting.
    await blobs.delete(sourceKey(doc.body.id));
    const created = await http.post(`/v1/documents/${doc.body.id}/jobs`).send({ task, generation });
    expect(created.status).toBeLessThan(500);
    if (created.status === 202) {
      const lost = await waitFor(created.body.id);
      if (lost.status === 'failed') expect(lost.error).toMatchObject({ code: 'NOT_FOUND', message: expect.stringMatching(/\S/) });
      else expect(lost.result).toMatchObject({ usage: { expandedChunks: 0, expansionLimitedBy: 'source_missing' }, evidence: [] });
    } else {
      // Here (no chunk references left either, so the text must be cut again): 409 DOCUMENT_CORRUPT, the document can
      // no longer be asked; not a 404, the document is there (issue 18 item 6), and no blob key in the answer.
      expect(created.status).toBe(409);
      expect(created.body).toEqual({ error: { code: 'DOCUMENT_CORRUPT', message: expect.stringContaining('upload it again') } });
    }
    await blobs.close?.();
  });
});

describe('bad input: a 4xx with a stable code in one error shape', () => {
  const cases: [string, () => request.Test, number, string][] = [
    ['malformed JSON', () => http.post('/v1/jobs').set('content-type', 'application/json').send('{"text": '), 400, 'INPUT_INVALID'],
    ['a wrong content type', () => http.post('/v1/jobs').set('content-type', 'text/plain').send('hello'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['an empty document', () => http.post('/v1/jobs').send({ text: '   \n', task: { type: 'summarize' } }), 400, 'INPUT_EMPTY'],
    ['a document over the size limit', () => http.post('/v1/jobs').send({ text: 'x'.repeat(21 * 1024 * 1024), task: { type: 'summarize' } }), 413, 'INPUT_TOO_LARGE'],
    ['an unsupported file type', () => http.post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from('GIF89a'), 'image.gif'), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['a PDF that fails to parse', () => http.post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from('%PDF-1.4 garbage'), 'broken.pdf'), 422, 'DOCUMENT_UNREADABLE'],
    ['a DOCX that fails to parse', () => http.post('/v1/jobs').field('task', '{"type":"summarize"}').attach('file', Buffer.from('PK\u0003\u0004garbage'), 'broken.docx'), 422, 'DOCUMENT_UNREADABLE'],
    ['an unknown job id', () => http.get('/v1/jobs/job_0000000000000000000000000000000'), 404, 'NOT_FOUND'],
    ['a path-like job id', () => http.get('/v1/jobs/..%2F..%2Fetc'), 404, 'NOT_FOUND'],
    ['an unknown document', () => http.post('/v1/documents/doc_nope/jobs').send({ task: { type: 'summarize' } }), 404, 'NOT_FOUND'],
    ['a qa task without a question', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'qa' } }), 400, 'INPUT_INVALID'],
    ['an unknown task type', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'poem' } }), 400, 'INPUT_INVALID'],
    ['generation out of range', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, generation: { temperature: 9 } }), 400, 'INPUT_INVALID'],
    ['a negative expansion', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, generation: { expand: { chunks: -1 } } }), 400, 'INPUT_INVALID'],
    ['a fractional expansion', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, generation: { expand: { chunks: 1.5 } } }), 400, 'INPUT_INVALID'],
    ['a score ratio above 1', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, generation: { expand: { chunks: 2, minScoreRatio: 1.5 } } }), 400, 'INPUT_INVALID'],
    ['an expansion over the cap', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, generation: { expand: { chunks: 99 } } }), 400, 'INPUT_INVALID'],
    ['too many new tokens', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, generation: { maxNewTokens: 100000 } }), 400, 'INPUT_INVALID'],
    ['an unknown field', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, priority: 'high' }), 400, 'INPUT_INVALID'],
    ['a question over the limit', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'qa', question: 'q'.repeat(5000) } }), 400, 'QUESTION_TOO_LONG'],
    ['a webhook to the metadata address', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, webhook: { url: 'http://169.254.169.254/latest' } }), 400, 'WEBHOOK_URL_FORBIDDEN'],
    ['a webhook that is not http', () => http.post('/v1/jobs').send({ text: 'hello', task: { type: 'summarize' }, webhook: { url: 'file:///etc/passwd' } }), 400, 'WEBHOOK_URL_FORBIDDEN'],
    ['a document over the decoder window', () => http.post('/v1/jobs').send({ text: 'Sentence. '.repeat(250_000), task: { type: 'summarize' } }), 422, 'CONTEXT_TOO_LONG'],
    ['a bad cursor', () => http.get('/v1/jobs?after=bm9wZQ'), 400, 'INPUT_INVALID'],
    ['an unknown route', () => http.get('/v2/anything'), 404, 'NOT_FOUND'],
  ];
  for (const [name, send, status, code] of cases) {
    it(name, async () => {
      const res = await send();
      expect(res.status).toBe(status);
      expect(res.body).toEqual({ error: { code, message: expect.any(String), ...(res.body.error?.details ? { details: expect.anything() } : {}) } });
      conforms('Error', res.body);
    });
  }

  it('stays healthy afterwards, with health, readiness and the OpenAPI document', async () => {
    await http.get('/healthz').expect(200, { status: 'ok' });
    const ready = await http.get('/readyz').expect(200);
    expect(ready.body.checks).toEqual({ redis: { ok: true }, blobStore: { ok: true }, model: { ok: true } });
    const docs = await http.get('/docs/openapi.json').expect(200);
    expect(docs.body.openapi).toBe('3.1.0');
    // The rendered reference: a page over the generated document, its scripts served from the package.
    const page = await http.get('/docs').expect(200).expect('content-type', /text\/html/);
    expect(page.text).toContain('/docs/assets/swagger-ui-bundle.js');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    const bundle = await http.get('/docs/assets/swagger-ui-bundle.js').expect(200).expect('content-type', /javascript/);
    expect(bundle.text.length).toBeGreaterThan(100_000);
    expect((await http.get('/docs/assets/init.js').expect(200)).text).toContain("url: '/docs/openapi.json'");
    await http.get('/docs/assets/..%2Fpackage.json').expect(404);
    expect(Object.keys(docs.body.paths)).toEqual(expect.arrayContaining(['/v1/jobs', '/v1/jobs/{id}', '/v1/documents/{id}/jobs']));
    // The list page, and the count of responses the contract test checked over the whole suite.
    conforms('JobList', (await http.get('/v1/jobs?limit=5').expect(200)).body);
    expect(checked.Job).toBeGreaterThan(20);
    expect(checked.Error).toBeGreaterThan(15);
  });
});
