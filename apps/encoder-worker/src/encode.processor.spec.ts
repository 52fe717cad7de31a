import type { Job } from 'bullmq';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '@lib/blob-store/testing';
import { JobStore } from '@lib/job-store';
import { testRedis } from '@lib/job-store/testing';
import type { EncodeRunner } from '@lib/model-runtime';
import { chunkHash, chunkIdsKey, decodeSoftPrompt, encodeChunkIds, softPromptKey, softPromptKeyHash } from '@lib/shared';
import { EncodeProcessor } from './encode.processor.js';

/**
 * One encode child as plumbing, against a fake runner (a character a token, a chunk's vector is its length and
 * first code), the in-memory blob store and the real Redis: it encodes only what is not stored, writes one blob a
 * chunk under its content key, and reports keys, refs and spans in the order it was given.
 */
const ENCODER = 'enc-fake';
const TENANT = 'tenant-a';
const SOURCE = 'One two three. Four five. Six seven eight nine.';

class FakeRunner implements EncodeRunner {
  readonly encoderId = ENCODER;
  readonly tokenizerId = 'fake-tokenizer';
  encoded: number[][][] = [];
  readonly chunkEncoder = {
    encodeChunks: async (chunks: readonly { text: string; ids: readonly number[] }[]) => {
      const ids = chunks.map((c) => [...c.ids]);
      this.encoded.push(ids);
      return Float32Array.from(ids.flatMap((x) => [x.length, x[0]!]));
    },
  };
  readonly pkg = { manifest: { encoder: { width: 2, maxTokens: 64 } as EncodeRunner['pkg']['manifest']['encoder'] } };
  tokenized: string[] = [];
  encoderIds(text: string): number[] {
    this.tokenized.push(text);
    return [...text].map((c) => c.charCodeAt(0));
  }
}

const { redis, prefix, cleanup } = testRedis();
const store = new JobStore(redis, prefix, 600);
const log = pino({ level: 'silent' });
const config = { softPromptDtype: 'f32' as const, blobFetchConcurrency: 4, encoderMaxBatchTokens: 4096, encoderMaxBatchSize: 8 };
const refs = [
  { i: 2, start: 26, end: SOURCE.length, tokens: SOURCE.length - 26 },
  { i: 0, start: 0, end: 15, tokens: 15 },
];

afterAll(cleanup);

/** A document record for an encode child's owner: a step whose owner does not exist (was deleted) refuses to run. */
async function documentOwner(id: string): Promise<void> {
  const now = new Date().toISOString();
  await store.createDocument({ id, tenant: TENANT, status: 'encoding', sourceKey: `sources/${id}`, chars: SOURCE.length, chunks: 2, metadata: {}, createdAt: now, readyAt: null, expiresAt: now, error: null });
}

describe('EncodeProcessor', () => {
  it('encodes what is missing, stores it under content keys, and skips it the second time', async () => {
    const blobs = new MemoryBlobStore();
    await blobs.put('sources/doc_1', SOURCE, 'text/plain');
    await documentOwner('doc_1');
    const runner = new FakeRunner();
    const processor = new EncodeProcessor(runner, blobs, store, config);
    const payload = { v: 1 as const, owner: { kind: 'document' as const, id: 'doc_1' }, tenant: TENANT, sourceKey: 'sources/doc_1', batch: 3, chunks: refs };
    const job = { data: payload } as unknown as Job;
    const first = await processor.encodeChunks(payload, job, log);
    const keys = refs.map((r) => softPromptKey(TENANT, ENCODER, chunkHash(ENCODER, SOURCE.slice(r.start, r.end))));
    expect(first).toMatchObject({ batch: 3, keys, refs: [2, 0], spans: refs.map((r) => [r.start, r.end]), encoded: 2, cached: 0 });
    const text = SOURCE.slice(26);
    expect(decodeSoftPrompt(await blobs.get(keys[0]!), { encoderId: ENCODER, chunkHash: softPromptKeyHash(keys[0]!) }).data).toEqual(Float32Array.from([text.length, text.charCodeAt(0)]));
    const again = await processor.encodeChunks(payload, job, log);
    expect(again).toMatchObject({ encoded: 0, cached: 2, keys });
    expect(runner.encoded.flat()).toHaveLength(2); // the second child ran no encoder
    expect(runner.tokenized).toHaveLength(2); // nor tokenized what was stored
    expect(again.encoderTokens).toBe(first.encoderTokens);
    // Each soft prompt is referenced once by its owner, however often its step runs.
    for (const k of keys) expect(await store.refCount(TENANT, k)).toBe(1);
  });

  it('refuses to run for an owner that was deleted, and leaves what a deleted owner\'s step wrote for deletion', async () => {
    const blobs = new MemoryBlobStore();
    await blobs.put('sources/doc_3', SOURCE, 'text/plain');
    const processor = new EncodeProcessor(new FakeRunner(), blobs, store, config);
    const payload = { v: 1 as const, owner: { kind: 'document' as const, id: 'doc_3' }, tenant: TENANT, sourceKey: 'sources/doc_3', batch: 0, chunks: refs };
    await expect(processor.encodeChunks(payload, { data: payload } as unknown as Job, log)).rejects.toMatchObject({ code: 'JOB_CANCELLED' });
    expect(blobs.keys()).toEqual(['sources/doc_3']); // nothing written for it

    // Deleted while it encodes: its blobs, referenced by no one, become pending deletions.
    await documentOwner('doc_3');
    const slow = new FakeRunner();
    const encode = slow.chunkEncoder.encodeChunks;
    slow.chunkEncoder.encodeChunks = async (chunks) => {
      await store.deleteDocumentRecords({ id: 'doc_3', tenant: TENANT }, []);
      return encode(chunks);
    };
    const other = { ...payload, chunks: [{ i: 0, start: 15, end: 25, tokens: 10 }] };
    await expect(new EncodeProcessor(slow, blobs, store, config).encodeChunks(other, { data: other } as unknown as Job, log)).rejects.toMatchObject({ code: 'JOB_CANCELLED' });
    const written = softPromptKey(TENANT, ENCODER, chunkHash(ENCODER, SOURCE.slice(15, 25)));
    expect(await store.pendingBlobDeletions(100)).toContain(written);
    expect(await store.refCount(TENANT, written)).toBe(0);
  });

  it('refuses a chunk whose tokens differ from the API\'s count (another package cut it), without encoding it', async () => {
    const blobs = new MemoryBlobStore();
    await blobs.put('sources/doc_2', SOURCE, 'text/plain');
    await documentOwner('doc_2');
    const runner = new FakeRunner();
    const processor = new EncodeProcessor(runner, blobs, store, config);
    // Another tenant: this chunk is stored for TENANT by the first test.
    const payload = { v: 1 as const, owner: { kind: 'document' as const, id: 'doc_2' }, tenant: 'tenant-b', sourceKey: 'sources/doc_2', batch: 0, chunks: [{ i: 0, start: 0, end: 15, tokens: 14 }] };
    await expect(processor.encodeChunks(payload, { data: payload } as unknown as Job, log)).rejects.toMatchObject({ code: 'MODEL_MISMATCH' });
    expect(runner.encoded).toHaveLength(0);
  });

  it('knows what is stored from the job store\'s marks: a blob written outside them is encoded again, a deleted owner\'s last soft prompts are unmarked', async () => {
    const blobs = new MemoryBlobStore();
    await blobs.put('sources/doc_4', SOURCE, 'text/plain');
    await documentOwner('doc_4');
    const tenant = 'tenant-c';
    const payload = { v: 1 as const, owner: { kind: 'document' as const, id: 'doc_4' }, tenant, sourceKey: 'sources/doc_4', batch: 0, chunks: refs };
    const keys = refs.map((r) => softPromptKey(tenant, ENCODER, chunkHash(ENCODER, SOURCE.slice(r.start, r.end))));
    // A blob present without a mark (written before marks existed, or by hand) is not trusted: it is encoded again.
    await blobs.put(keys[0]!, 'not a soft prompt', 'application/octet-stream');
    const runner = new FakeRunner();
    const processor = new EncodeProcessor(runner, blobs, store, config);
    expect(await processor.encodeChunks(payload, { data: payload } as unknown as Job, log)).toMatchObject({ encoded: 2, cached: 0 });
    expect(await store.storedSoftPrompts(tenant, keys)).toEqual([true, true]);
    expect(await processor.encodeChunks(payload, { data: payload } as unknown as Job, log)).toMatchObject({ encoded: 0, cached: 2 });
    // The owner deleted: its soft prompts go to deletion and lose their marks, so the next owner encodes them again.
    expect(await store.deleteDocumentRecords({ id: 'doc_4', tenant }, [])).toEqual(expect.arrayContaining(keys));
    expect(await store.storedSoftPrompts(tenant, keys)).toEqual([false, false]);
    await documentOwner('doc_5');
    const next = { ...payload, owner: { kind: 'document' as const, id: 'doc_5' } };
    expect(await processor.encodeChunks(next, { data: next } as unknown as Job, log)).toMatchObject({ encoded: 2, cached: 0 });
  });

  it('encodes with the ids the API measured when its tokenizer is this one, and tokenizes itself otherwise', async () => {
    const blobs = new MemoryBlobStore();
    await blobs.put('sources/doc_6', SOURCE, 'text/plain');
    await documentOwner('doc_6');
    // The API's ids, by chunk index (0, 1, 2); chunk 1 is not in this child. Marked so they cannot come from the fake tokenizer.
    const measured = (tokenizer: string) => encodeChunkIds({ tokenizer, chunks: [Array.from({ length: 15 }, (_, k) => 900 + k), [1], Array.from({ length: SOURCE.length - 26 }, (_, k) => 500 + k)] });
    await blobs.put(chunkIdsKey('doc_6'), measured('fake-tokenizer'));
    const runner = new FakeRunner();
    const processor = new EncodeProcessor(runner, blobs, store, config);
    const payload = { v: 1 as const, owner: { kind: 'document' as const, id: 'doc_6' }, tenant: 'tenant-d', sourceKey: 'sources/doc_6', batch: 0, chunks: refs, idsKey: chunkIdsKey('doc_6') };
    expect(await processor.encodeChunks(payload, { data: payload } as unknown as Job, log)).toMatchObject({ encoded: 2 });
    expect(runner.tokenized).toEqual([]);
    expect(runner.encoded.flat().map((ids) => ids[0]).sort()).toEqual([500, 900]);
    // Measured by another tokenizer: not used.
    await documentOwner('doc_7');
    await blobs.put('sources/doc_7', SOURCE, 'text/plain');
    await blobs.put(chunkIdsKey('doc_7'), measured('another-tokenizer'));
    const other = new FakeRunner();
    const next = { ...payload, owner: { kind: 'document' as const, id: 'doc_7' }, tenant: 'tenant-e', sourceKey: 'sources/doc_7', idsKey: chunkIdsKey('doc_7') };
    expect(await new EncodeProcessor(other, blobs, store, config).encodeChunks(next, { data: next } as unknown as Job, log)).toMatchObject({ encoded: 2 });
    expect(other.tokenized).toHaveLength(2);
  });
});
