import { randomUUID } from 'node:crypto';
import type { Job } from 'bullmq';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '@lib/blob-store/testing';
import { JobStore, Pipeline } from '@lib/job-store';
import { testRedis } from '@lib/job-store/testing';
import type { DecodeRunner, GroundedInput, GroundedResult } from '@lib/model-runtime';
import { GenerationParams, chunkHash, encodeSoftPrompt, resultKey, softPromptKey, softPromptKeyHash, type JobRecord } from '@lib/shared';
import { DecodeProcessor } from './decode.processor.js';

/**
 * The decode step as plumbing, against a fake model runner, the in-memory blob store and the real Redis: it gathers
 * the children's soft prompts in document order, reads the chunk texts from the stored source, hands both to the
 * runner, and stores the result with its evidence; with the source gone it still ends the job, saying so.
 */
const WIDTH = 2;
const ENCODER = 'enc-fake';
const TENANT = 'tenant-a';
const SOURCE = 'Alpha beta gamma. Delta epsilon zeta. Eta theta iota.';
const SPANS: [number, number][] = [[0, 18], [18, 37], [37, SOURCE.length]];

class FakeRunner implements DecodeRunner {
  readonly encoderId = ENCODER;
  readonly pkg = { manifest: { encoder: { width: WIDTH } as DecodeRunner['pkg']['manifest']['encoder'] } };
  readonly adapter = { run: async (embeddings: Float32Array) => embeddings.map((x) => x * 10) };
  calls: GroundedInput[] = [];
  promptIds() {
    return { prefixIds: [1], suffixIds: [2] };
  }
  checkBudget() {}
  async generateGrounded(input: GroundedInput): Promise<GroundedResult> {
    this.calls.push(input);
    const n = input.softTokens.length / WIDTH;
    const evidence = input.chunks
      ? [{ chunkIndex: 1, charStart: input.chunks[1]!.start, charEnd: input.chunks[1]!.end, score: 3, expanded: true, text: input.chunks[1]!.text }]
      : [];
    return {
      gen: { tokens: [7, 8], text: 'an answer', finishReason: 'eos', prefillMs: 1, decodeMs: 1 },
      evidence,
      scores: {},
      expansion: input.chunks
        ? { expansionRequested: 4, expandedChunks: 1, expandedTokens: 5 }
        : { expansionRequested: 4, expandedChunks: 0, expandedTokens: 0, expansionLimitedBy: 'source_missing' },
      softTokens: n - (input.chunks ? 1 : 0),
      promptTokens: 2,
      scoringMs: 0,
      expandMs: 0,
    };
  }
}

const { redis, prefix, cleanup } = testRedis();
const store = new JobStore(redis, prefix, 600);
const pipeline = new Pipeline(redis, prefix, store);
const log = pino({ level: 'silent' });
let keys: string[];

function record(id: string, sourceKey: string): JobRecord {
  const now = new Date().toISOString();
  return {
    id, tenant: TENANT, status: 'queued', task: { type: 'qa', question: 'Which letters?' }, generation: GenerationParams.parse({}),
    webhook: null, metadata: {}, documentId: null, sourceKey, chars: SOURCE.length, chunkMs: 0,
    progress: { chunksTotal: 3, chunksEncoded: 3, chunksCached: 0 }, createdAt: now, startedAt: null, finishedAt: null, expiresAt: now,
    result: null, error: null,
  };
}

/** Two encode children, their chunks out of document order (as the API groups them by length). */
function fakeJob(id: string): Job {
  const child = (batch: number, refs: number[]) => ({
    batch, keys: refs.map((i) => keys[i]!), refs, spans: refs.map((i) => SPANS[i]!), encoded: refs.length, cached: 0, encoderTokens: 9, encodeMs: 1,
  });
  return { data: { v: 1, jobId: id, tenant: TENANT }, getChildrenValues: async () => ({ a: child(1, [1]), b: child(0, [2, 0]) }) } as unknown as Job;
}

beforeAll(async () => {
  keys = SPANS.map(([s, e]) => softPromptKey(TENANT, ENCODER, chunkHash(ENCODER, SOURCE.slice(s, e))));
});
afterAll(async () => {
  await pipeline.close();
  await cleanup();
});

async function setup(withSource: boolean) {
  const blobs = new MemoryBlobStore();
  const id = `job_${randomUUID().replace(/-/g, '').slice(0, 29)}`;
  const sourceKey = `sources/${id}`;
  if (withSource) await blobs.put(sourceKey, SOURCE, 'text/plain');
  for (const [i, key] of keys.entries()) await blobs.put(key, encodeSoftPrompt({ encoderId: ENCODER, chunkHash: softPromptKeyHash(key), shape: [WIDTH], data: Float32Array.from([i, i + 0.5]) }), 'application/octet-stream');
  await store.createJob(record(id, sourceKey));
  const runner = new FakeRunner();
  const processor = new DecodeProcessor(runner, blobs, store, pipeline, { blobFetchConcurrency: 4, softPromptDtype: 'f32', softPromptCacheMb: 0 }, async () => {
    throw new Error('no encoder needed');
  });
  return { blobs, id, runner, processor };
}

describe('DecodeProcessor', () => {
  it('hands the runner the soft prompts and the chunk texts in document order, and stores the grounded result', async () => {
    const { blobs, id, runner, processor } = await setup(true);
    await expect(processor.decodeJob({ v: 1, jobId: id, tenant: TENANT }, fakeJob(id), log)).resolves.toEqual({ resultKey: resultKey(id) });
    const input = runner.calls[0]!;
    expect([...input.softTokens]).toEqual([0, 5, 10, 15, 20, 25]); // the adapter's output of chunks 0, 1, 2
    expect(input.chunks).toEqual(SPANS.map(([start, end], index) => ({ index, start, end, text: SOURCE.slice(start, end) })));
    const done = (await store.getJob(id))!;
    expect(done.status).toBe('succeeded');
    expect(done.result).toMatchObject({
      text: 'an answer',
      usage: { chunks: 3, softTokens: 2, expandedChunks: 1, expansionRequested: 4, encoderTokens: 18 },
      evidence: [{ chunkIndex: 1, charStart: 18, charEnd: 37, text: 'Delta epsilon zeta.', expanded: true }],
    });
    expect(JSON.parse((await blobs.get(resultKey(id))).toString('utf8'))).toEqual(done.result);
  });

  it('answers without the chunk texts when the source is gone, and says so', async () => {
    const { id, runner, processor } = await setup(false);
    await processor.decodeJob({ v: 1, jobId: id, tenant: TENANT }, fakeJob(id), log);
    expect(runner.calls[0]!.chunks).toBeNull();
    const done = (await store.getJob(id))!;
    expect(done.status).toBe('succeeded');
    expect(done.result).toMatchObject({ usage: { expandedChunks: 0, expansionLimitedBy: 'source_missing' }, evidence: [] });
  });

  it('refuses a cancelled job before any work', async () => {
    const { id, runner, processor } = await setup(true);
    await store.transition(id, 'cancelled');
    await expect(processor.decodeJob({ v: 1, jobId: id, tenant: TENANT }, fakeJob(id), log)).rejects.toMatchObject({ code: 'JOB_CANCELLED' });
    expect(runner.calls).toHaveLength(0);
  });
});
