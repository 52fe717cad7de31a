import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBlobStore, type BlobStore } from '@lib/blob-store';
import type { JobStore, Pipeline } from '@lib/job-store';
import { QueueName, chunkHash, documentChunksKey, resultKey, softPromptKey, sourceKey, type Config, type DocumentChunks } from '@lib/shared';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { LifecycleService } from '../../apps/api/src/lifecycle/lifecycle.service.js';
import { PIPELINE, STORE } from '../../apps/api/src/tokens.js';
import { startStack, type Stack } from './stack.js';

/**
 * Data lifecycle against the composed stack, once per blob driver (a local folder, and S3 through s3rver): deleting a
 * document removes every blob of its own and leaves the chunks another document shares; an unknown or another
 * tenant's id is 404; a running job is cancelled, then deleted, and nothing of it is left or still running; the
 * retention sweep deletes what is due; the admin purge empties a tenant. The blob store is listed before and after.
 */
const SAMPLE = await readFile(fileURLToPath(new URL('../../samples/gpl-3.0.txt', import.meta.url)), 'utf8');
const KEYS = { alpha: 'alpha-key-0123456789abcdef', beta: 'beta-key-0123456789abcdef' };
const ADMIN_KEY = 'admin-key-0123456789abcdef';
const alpha = `Bearer ${KEYS.alpha}`;
const beta = `Bearer ${KEYS.beta}`;
// Two documents that share their first 3000 characters: the chunks cut from that part are the same text, so the
// same soft prompts.
const SHARED = SAMPLE.slice(0, 3000);
const TEXT_A = `${SHARED}${SAMPLE.slice(10_000, 12_000)}`;
const TEXT_B = `${SHARED}${SAMPLE.slice(20_000, 22_000)}`;

describe.each(['local', 's3'] as const)('data lifecycle with the %s blob store', (driver) => {
  let stack: Stack;
  let http: ReturnType<typeof request>;
  let blobs: BlobStore;
  let dataDir: string | undefined;
  let encoderId: string;
  const contract: Record<'Document' | 'DocumentList' | 'Deleted' | 'TenantPurge' | 'Error', ValidateFunction> = {} as never;

  function conforms(kind: keyof typeof contract, body: unknown): void {
    if (!contract[kind](body)) throw new Error(`${kind} response breaks the OpenAPI contract: ${JSON.stringify(contract[kind].errors?.slice(0, 3))}\n${JSON.stringify(body).slice(0, 400)}`);
  }

  async function waitJob(id: string, auth: string, until: (j: { status: string }) => boolean = (j) => ['succeeded', 'failed', 'cancelled'].includes(j.status)) {
    for (let i = 0; i < 1200; i++) {
      const res = await http.get(`/v1/jobs/${id}`).set('Authorization', auth).expect(200);
      if (until(res.body)) return res.body;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`job ${id} did not get there`);
  }

  async function createDocument(text: string, auth = alpha): Promise<string> {
    const created = await http.post('/v1/documents').set('Authorization', auth).send({ text }).expect(202);
    conforms('Document', created.body);
    for (let i = 0; i < 1200; i++) {
      const res = await http.get(`/v1/documents/${created.body.id}`).set('Authorization', auth).expect(200);
      conforms('Document', res.body);
      if (res.body.status === 'ready') return created.body.id;
      expect(res.body.status).toBe('encoding');
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('document not ready');
  }

  /** The soft-prompt keys of a stored document, from its stored chunk references and text. */
  async function softPromptsOf(docId: string, tenant: string): Promise<string[]> {
    const refs = JSON.parse((await blobs.get(documentChunksKey(docId))).toString('utf8')) as DocumentChunks;
    const text = (await blobs.get(sourceKey(docId))).toString('utf8');
    return refs.batches.flat().map((r) => softPromptKey(tenant, encoderId, chunkHash(encoderId, text.slice(r.start, r.end))));
  }

  const store = () => stack.api.app.get<JobStore>(STORE);
  const lifecycle = () => stack.api.app.get(LifecycleService);

  beforeAll(async () => {
    dataDir = driver === 'local' ? await mkdtemp(path.join(os.tmpdir(), 'e2llm-lifecycle-')) : undefined;
    stack = await startStack({
      apiKeys: `alpha:${KEYS.alpha},beta:${KEYS.beta}`,
      adminApiKey: ADMIN_KEY,
      ...(driver === 'local' ? { blobStore: 'local', dataDir } : {}),
    } as unknown as Partial<Config>);
    http = request(stack.api.url);
    blobs = createBlobStore(stack.config);
    encoderId = (await http.get('/v1/models').set('Authorization', alpha).expect(200)).body.data[0].encoderId;
    const doc = (await http.get('/docs/openapi.json').expect(200)).body;
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    (formats as unknown as { default: (a: Ajv2020) => void }).default(ajv);
    for (const kind of Object.keys({ Document: 0, DocumentList: 0, Deleted: 0, TenantPurge: 0, Error: 0 }) as (keyof typeof contract)[]) {
      contract[kind] = ajv.compile(doc.components.schemas[kind]);
    }
  }, 180_000);

  afterAll(async () => {
    await blobs?.close?.();
    await stack?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('deletes every blob of a document and its jobs, and leaves the chunks another document shares', async () => {
    const a = await createDocument(TEXT_A);
    const b = await createDocument(TEXT_B);
    const asked = await http.post(`/v1/documents/${a}/jobs`).set('Authorization', alpha).send({ task: { type: 'qa', question: 'Who may convey copies?' }, generation: { maxNewTokens: 4 } }).expect(202);
    expect((await waitJob(asked.body.id, alpha)).status).toBe('succeeded');

    const [promptsA, promptsB] = [await softPromptsOf(a, 'alpha'), await softPromptsOf(b, 'alpha')];
    const shared = promptsA.filter((k) => promptsB.includes(k));
    const onlyA = promptsA.filter((k) => !promptsB.includes(k));
    expect(shared.length).toBeGreaterThanOrEqual(4);
    expect(onlyA.length).toBeGreaterThanOrEqual(2);
    const ownA = [sourceKey(a), documentChunksKey(a), resultKey(asked.body.id), ...onlyA];

    const before = await blobs.list('');
    for (const k of [...ownA, ...promptsB, sourceKey(b), documentChunksKey(b)]) expect(before).toContain(k);

    const del = await http.delete(`/v1/documents/${a}`).set('Authorization', alpha).expect(200);
    conforms('Deleted', del.body);
    expect(del.body).toEqual({ object: 'document', id: a, deleted: true, jobs: [asked.body.id] });

    const after = await blobs.list('');
    // Exactly the document's own blobs are gone: its source, chunk references, its job's result and the soft prompts
    // only it used. Everything else, document B's shared chunks included, is still there.
    expect(after).toEqual(before.filter((k) => !ownA.includes(k)));
    for (const k of shared) expect(after).toContain(k);
    for (const k of shared) expect(await store().refCount('alpha', k)).toBe(1);
    expect((await http.get(`/v1/documents/${a}`).set('Authorization', alpha)).status).toBe(404);
    expect((await http.get(`/v1/jobs/${asked.body.id}`).set('Authorization', alpha)).status).toBe(404);
    expect((await http.delete(`/v1/documents/${a}`).set('Authorization', alpha)).status).toBe(404); // already gone

    // B is whole: asked again, every chunk's soft prompt is found in the store (none encoded again).
    const again = await http.post(`/v1/documents/${b}/jobs`).set('Authorization', alpha).send({ task: { type: 'summarize' }, generation: { maxNewTokens: 4 } }).expect(202);
    const done = await waitJob(again.body.id, alpha);
    expect(done.status).toBe('succeeded');
    expect(done.progress.chunksCached).toBe(done.progress.chunksTotal);

    // Deleting B too leaves nothing of either under the tenant's soft prompts.
    expect((await http.delete(`/v1/documents/${b}`).set('Authorization', alpha).expect(200)).body.jobs).toEqual([again.body.id]);
    expect(await blobs.list('soft-prompts/alpha/')).toEqual([]);
    const left = await blobs.list('');
    for (const k of [sourceKey(b), documentChunksKey(b), resultKey(again.body.id)]) expect(left).not.toContain(k);
  });

  it("answers 404 NOT_FOUND for an unknown id and for another tenant's, and deletes nothing", async () => {
    const doc = await createDocument(SAMPLE.slice(30_000, 31_000));
    const job = await http.post('/v1/jobs').set('Authorization', alpha).send({ text: SAMPLE.slice(31_000, 32_000), task: { type: 'summarize' }, generation: { maxNewTokens: 2 } }).expect(202);
    await waitJob(job.body.id, alpha);
    const before = await blobs.list('');
    for (const [path, auth] of [
      [`/v1/documents/${doc}`, beta],
      [`/v1/jobs/${job.body.id}`, beta],
      [`/v1/documents/doc_000000000${'0'.repeat(20)}`, alpha],
      [`/v1/jobs/job_000000000${'0'.repeat(20)}`, alpha],
      [`/v1/jobs/${doc}`, alpha], // a document id is no job id
      ['/v1/jobs/..%2F..%2Fetc', alpha],
    ] as const) {
      const res = await http.delete(path).set('Authorization', auth);
      expect(res.status, path).toBe(404);
      expect(res.body.error.code).toBe('NOT_FOUND');
      conforms('Error', res.body);
    }
    expect((await http.delete(`/v1/jobs/${job.body.id}`)).status).toBe(401);
    expect(await blobs.list('')).toEqual(before);
    expect((await http.get(`/v1/documents/${doc}`).set('Authorization', alpha)).status).toBe(200);
    await http.delete(`/v1/jobs/${job.body.id}`).set('Authorization', alpha).expect(200);
    await http.delete(`/v1/documents/${doc}`).set('Authorization', alpha).expect(200);
  });

  it('cancels a running job, then deletes it: nothing of it is left in the store and no step of it runs on', async () => {
    const text = SAMPLE.slice(22_000, 34_000);
    const created = await http.post('/v1/jobs').set('Authorization', beta).send({ text, task: { type: 'summarize' }, generation: { maxNewTokens: 400, minNewTokens: 400 } }).expect(202);
    const id = created.body.id as string;
    const running = await waitJob(id, beta, (j) => j.status === 'decoding' || ['succeeded', 'failed', 'cancelled'].includes(j.status));
    expect(running.status).toBe('decoding');
    const del = await http.delete(`/v1/jobs/${id}`).set('Authorization', beta).expect(200);
    expect(del.body).toEqual({ object: 'job', id, deleted: true, jobs: [] });
    expect((await http.get(`/v1/jobs/${id}`).set('Authorization', beta)).status).toBe(404);

    // No step of it stays active, and nothing it wrote or still writes survives (the sweep collects late writes).
    const pipeline = stack.api.app.get<Pipeline>(PIPELINE);
    const stepsOf = async () => (await Promise.all([QueueName.Encode, QueueName.Decode].map((q) => pipeline.queues[q].getJobs(['active', 'waiting', 'waiting-children', 'delayed'])))).flat().filter((j) => j?.id?.startsWith(id));
    for (let i = 0; i < 100; i++) {
      const kept = (await blobs.list('')).filter((k) => k === sourceKey(id) || k === resultKey(id));
      if (kept.length === 0 && (await blobs.list('soft-prompts/beta/')).length === 0 && (await stepsOf()).length === 0) break;
      await lifecycle().sweep();
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await stepsOf()).toEqual([]);
    expect((await blobs.list('')).filter((k) => k === sourceKey(id) || k === resultKey(id))).toEqual([]);
    expect(await blobs.list('soft-prompts/beta/')).toEqual([]);
    expect((await http.get('/v1/jobs').set('Authorization', beta).expect(200)).body.data.map((j: { id: string }) => j.id)).not.toContain(id);
  });

  it('lists documents newest first, paged, each tenant only its own', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await createDocument(SAMPLE.slice(12_000 + i * 700, 12_600 + i * 700)));
    const first = await http.get('/v1/documents?limit=2').set('Authorization', alpha).expect(200);
    conforms('DocumentList', first.body);
    expect(first.body.data.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.hasMore).toBe(true);
    const second = await http.get(`/v1/documents?limit=2&after=${first.body.nextCursor}`).set('Authorization', alpha).expect(200);
    conforms('DocumentList', second.body);
    expect(second.body.data.map((d: { id: string }) => d.id)).toEqual([ids[0]]);
    expect(second.body.nextCursor).toBeNull();
    expect((await http.get('/v1/documents').set('Authorization', beta).expect(200)).body.data).toEqual([]);
    const bad = await http.get('/v1/documents?limit=0').set('Authorization', alpha).expect(400);
    expect(bad.body.error.code).toBe('INPUT_INVALID');
    for (const id of ids) await http.delete(`/v1/documents/${id}`).set('Authorization', alpha).expect(200);
  });

  it('deletes a finished job once its retention has ended (the sweep), blobs included', async () => {
    const job = await http.post('/v1/jobs').set('Authorization', alpha).send({ text: SAMPLE.slice(14_500, 16_000), task: { type: 'summarize' }, generation: { maxNewTokens: 2 } }).expect(202);
    const done = await waitJob(job.body.id, alpha);
    // Due RETENTION_SECONDS after it ended (the default, 7 days, here): brought forward to now rather than waited for.
    expect(Date.parse(done.expiresAt) - Date.parse(done.finishedAt)).toBe(stack.config.retentionSeconds * 1000);
    expect(await blobs.list('')).toContain(resultKey(job.body.id));
    await lifecycle().sweep();
    expect((await http.get(`/v1/jobs/${job.body.id}`).set('Authorization', alpha)).status).toBe(200); // not due yet
    await store().postponeDeletion(job.body.id, Date.now() - 1);
    await lifecycle().sweep();
    expect((await http.get(`/v1/jobs/${job.body.id}`).set('Authorization', alpha)).status).toBe(404);
    const left = await blobs.list('');
    expect(left).not.toContain(resultKey(job.body.id));
    expect(left).not.toContain(sourceKey(job.body.id));
    expect(await blobs.list('soft-prompts/alpha/')).toEqual([]);
  });

  it('purges a whole tenant with the admin key', async () => {
    const doc = await createDocument(SAMPLE.slice(16_000, 17_500), beta);
    const job = await http.post('/v1/jobs').set('Authorization', beta).send({ text: SAMPLE.slice(17_500, 19_000), task: { type: 'summarize' }, generation: { maxNewTokens: 2 } }).expect(202);
    await waitJob(job.body.id, beta);
    const keep = await http.post('/v1/jobs').set('Authorization', alpha).send({ text: SAMPLE.slice(17_500, 19_000), task: { type: 'summarize' }, generation: { maxNewTokens: 2 } }).expect(202);
    await waitJob(keep.body.id, alpha);
    const alphaBefore = await blobs.list('soft-prompts/alpha/');
    expect(alphaBefore.length).toBeGreaterThan(0);
    expect((await blobs.list('soft-prompts/beta/')).length).toBeGreaterThan(0);

    expect((await http.post('/admin/tenants/beta/purge')).status).toBe(401);
    expect((await http.post('/admin/tenants/beta/purge').set('Authorization', beta)).status).toBe(403);
    expect((await http.post('/admin/tenants/..%2Fx/purge').set('Authorization', `Bearer ${ADMIN_KEY}`)).status).toBe(400);
    const purged = await http.post('/admin/tenants/beta/purge').set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200);
    conforms('TenantPurge', purged.body);
    expect(purged.body).toMatchObject({ object: 'tenant.purge', tenant: 'beta', jobs: 1, documents: 1 });
    expect(purged.body.blobs).toBeGreaterThan(4);
    expect(await blobs.list('soft-prompts/beta/')).toEqual([]);
    const left = await blobs.list('');
    for (const k of [sourceKey(doc), documentChunksKey(doc), sourceKey(job.body.id), resultKey(job.body.id)]) expect(left).not.toContain(k);
    expect((await http.get(`/v1/jobs/${job.body.id}`).set('Authorization', beta)).status).toBe(404);
    expect((await http.get('/v1/documents').set('Authorization', beta).expect(200)).body.data).toEqual([]);
    // The other tenant keeps everything, the same text's soft prompts included.
    expect(await blobs.list('soft-prompts/alpha/')).toEqual(alphaBefore);
    expect((await http.get(`/v1/jobs/${keep.body.id}`).set('Authorization', alpha)).status).toBe(200);
    await http.delete(`/v1/jobs/${keep.body.id}`).set('Authorization', alpha).expect(200);
  });
});
