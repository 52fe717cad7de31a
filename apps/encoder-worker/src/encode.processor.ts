import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { BlobStore } from '@lib/blob-store';
import { mapLimit } from '@lib/blob-store';
import type { JobStore } from '@lib/job-store';
import { metrics, recordCacheLookups } from '@lib/job-store';
import type { EncodeRunner } from '@lib/model-runtime';
import { AppError, ENCODER_BATCH_COST_TOKENS, EncodeChunks, chunkHash, decodeChunkIds, encodeSoftPrompt, planPaddedBatches, softPromptKey, type Config } from '@lib/shared';
import type { z } from 'zod';

type EncodeResult = z.output<typeof EncodeChunks.result>;

/**
 * Plumbing for one encode child: parse, read the source, skip chunks whose soft prompt is stored, encode the rest in
 * token-budget batches, write one blob per chunk and mark it stored, report progress. The model runner does the compute.
 */
export class EncodeProcessor {
  private readonly sources = new Map<string, Promise<string>>();
  /** The API's encoder ids of a flow's chunks (chunk-ids.ts), shared by siblings like the source. */
  private readonly measured = new Map<string, Promise<ReturnType<typeof decodeChunkIds>>>();
  /** The one encoder session runs one batch set at a time; jobs held at once (ENCODER_CONCURRENCY) queue here. */
  private lane: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly model: EncodeRunner,
    private readonly blobs: BlobStore,
    private readonly store: JobStore,
    private readonly config: Pick<Config, 'softPromptDtype' | 'blobFetchConcurrency' | 'encoderMaxBatchTokens' | 'encoderMaxBatchSize'>,
  ) {}

  encodeChunks = async (p: z.output<typeof EncodeChunks.payload>, job: Job, log: Logger): Promise<EncodeResult> => {
    if (p.owner.kind === 'job') {
      const record = await this.store.getJob(p.owner.id);
      if (!record) throw new AppError('NOT_FOUND', `job ${p.owner.id} no longer exists`);
      if (record.status === 'cancelled') throw new AppError('JOB_CANCELLED', 'the job was cancelled');
      await this.store.transition(p.owner.id, 'encoding');
    }
    const t0 = performance.now();
    const source = await this.source(p.sourceKey);
    const download = performance.now() - t0;

    // The chunks are the API's, cut by the encoder's tokens: each is encoded as it is, never split again. Keys come
    // from the text alone, so only the chunks not stored yet are tokenized.
    const tPrep = performance.now();
    const encoderId = this.model.encoderId;
    const pieces = p.chunks.map((ref) => {
      const text = source.slice(ref.start, ref.end);
      const hash = chunkHash(encoderId, text);
      return { ref: ref.i, start: ref.start, end: ref.end, tokens: ref.tokens, text, hash, key: softPromptKey(p.tenant, encoderId, hash) };
    });
    const prep = performance.now() - tPrep;
    // Referenced before they are reused or written, so a delete of another job or document of the tenant that shares
    // a chunk keeps its soft prompt (libs/job-store: reference counts). Refused when the owner was deleted meanwhile.
    if (!(await this.store.addRefs(p.owner, p.tenant, pieces.map((c) => c.key)))) {
      throw new AppError('JOB_CANCELLED', `${p.owner.kind} ${p.owner.id} was deleted`);
    }
    const tExists = performance.now();
    // Which are written: one round trip to the job store's marks, whatever the blob driver (JobStore.storedSoftPrompts).
    const stored = await this.store.storedSoftPrompts(p.tenant, pieces.map((c) => c.key));
    const maxTokens = this.model.pkg.manifest.encoder.maxTokens;
    // The ids the API measured, when it stored them with this worker's tokenizer: no chunk is tokenized twice.
    const measured = stored.every(Boolean) || p.idsKey === undefined ? undefined : await this.measuredIds(p.idsKey);
    const apiIds = measured?.tokenizer === this.model.tokenizerId ? measured : undefined;
    const missing = pieces
      .filter((_, i) => !stored[i])
      .map((c) => {
        const known = apiIds?.chunk(c.ref);
        const ids = known && known.length === c.tokens ? Array.from(known) : this.model.encoderIds(c.text);
        if (ids.length !== c.tokens || ids.length > maxTokens) {
          // Only a chunk list cut with another package's tokenizer gets here: encoding it could truncate it silently.
          throw new AppError('MODEL_MISMATCH', `chunk ${c.ref} has ${ids.length} encoder tokens here and ${c.tokens} as the API cut it (the encoder takes ${maxTokens}): the API and this worker serve different model packages`);
        }
        return { ...c, ids };
      });
    const existsMs = performance.now() - tExists;

    // Only the inference waits for the lane: with more than one job in hand, the next job's reading, tokenizing and
    // existence checks, and the last one's writes and Redis calls, overlap this one's inference. Batches are planned
    // here for the fewest padded tokens (each fits the encoder's limits, so the encoder runs it as one batch) and
    // encoded one at a time, so each batch's soft prompts are written while the next batch is encoded; only the last
    // batch's writes are left after the inference.
    // Not durable: a soft prompt is a content-addressed cache entry, and one lost or torn by a crash fails its
    // checksum or is missing, so the decoder encodes it again from the source (DecodeProcessor.softPrompt).
    const width = this.model.pkg.manifest.encoder.width;
    const plan = planPaddedBatches(
      missing.map((c) => c.ids.length),
      { maxBatchTokens: this.config.encoderMaxBatchTokens, maxBatchSize: this.config.encoderMaxBatchSize, batchCostTokens: ENCODER_BATCH_COST_TOKENS },
    );
    const writes: Promise<unknown>[] = [];
    const tWait = performance.now();
    let t1 = tWait;
    if (plan.length > 0) {
      await this.inLane(async () => {
        t1 = performance.now();
        for (const batch of plan) {
          const vectors = await this.model.chunkEncoder.encodeChunks(batch.map((i) => missing[i]!));
          metrics.encoderBatchSize.observe(batch.length);
          const write = mapLimit(batch, this.config.blobFetchConcurrency, (i, row) =>
            this.blobs.put(missing[i]!.key, encodeSoftPrompt({ encoderId, chunkHash: missing[i]!.hash, shape: [width], data: vectors.slice(row * width, (row + 1) * width) }, this.config.softPromptDtype), 'application/octet-stream', { durable: false }),
          );
          // Awaited below; handled now so a failed write is not an unhandled rejection while later batches run.
          write.catch(() => undefined);
          writes.push(write);
        }
      });
    }
    const inference = performance.now() - t1;
    const laneWait = t1 - tWait;
    const t2 = performance.now();
    await Promise.all(writes);
    await this.store.markStored(p.tenant, missing.map((c) => c.key));
    // The writes not hidden behind inference.
    const upload = performance.now() - t2;
    // Deleted while this step encoded: what it wrote and nobody else references is left for the deletion sweep.
    if (missing.length > 0 && !(await this.store.ownerExists(p.owner))) {
      await this.store.collectUnreferenced(p.tenant, missing.map((c) => c.key));
      throw new AppError('JOB_CANCELLED', `${p.owner.kind} ${p.owner.id} was deleted`);
    }
    metrics.stageSeconds.observe({ stage: 'encode_download' }, download / 1000);
    metrics.stageSeconds.observe({ stage: 'encode_inference' }, inference / 1000);
    metrics.stageSeconds.observe({ stage: 'encode_upload' }, upload / 1000);
    metrics.encoderTokens.inc(missing.reduce((a, c) => a + c.ids.length, 0));
    recordCacheLookups(pieces.length - missing.length, missing.length);

    if (p.owner.kind === 'job') await this.store.addProgress(p.owner.id, missing.length, pieces.length - missing.length);
    log.info(
      {
        chunks: pieces.length,
        encoded: missing.length,
        cached: pieces.length - missing.length,
        downloadMs: Math.round(download),
        prepMs: Math.round(prep),
        existsMs: Math.round(existsMs),
        laneWaitMs: Math.round(laneWait),
        inferenceMs: Math.round(inference),
        uploadMs: Math.round(upload),
      },
      'encoded',
    );
    return EncodeChunks.result.parse({
      batch: p.batch,
      keys: pieces.map((c) => c.key),
      refs: pieces.map((c) => c.ref),
      spans: pieces.map((c) => [c.start, c.end]),
      encoded: missing.length,
      cached: pieces.length - missing.length,
      encoderTokens: pieces.reduce((a, c) => a + c.tokens, 0),
      encodeMs: inference,
    });
  };

  private inLane<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lane.then(fn, fn);
    this.lane = run.catch(() => undefined);
    return run;
  }

  /** A flow's measured ids; undefined when they are gone (deleted, never written) or not readable as such. */
  private measuredIds(key: string): Promise<ReturnType<typeof decodeChunkIds>> {
    return sharedRead(this.measured, key, () =>
      this.blobs.get(key).then(decodeChunkIds, (err: unknown) => {
        if (err instanceof AppError && err.code === 'NOT_FOUND') return undefined;
        throw err;
      }),
    );
  }

  /** Siblings of one flow read the same source. */
  private source(key: string): Promise<string> {
    return sharedRead(this.sources, key, () => this.blobs.get(key).then((b) => b.toString('utf8')));
  }
}

/**
 * One read per key for the siblings of a flow that a worker holds: the last 8 keys' reads are kept (a failed read is
 * dropped, so the next asks again).
 */
function sharedRead<T>(reads: Map<string, Promise<T>>, key: string, read: () => Promise<T>): Promise<T> {
  let value = reads.get(key);
  if (!value) {
    value = read();
    value.catch(() => reads.delete(key));
    reads.set(key, value);
    if (reads.size > 8) reads.delete(reads.keys().next().value!);
  }
  return value;
}
