import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { BlobStore } from '@lib/blob-store';
import { mapLimit } from '@lib/blob-store';
import type { JobStore } from '@lib/job-store';
import { metrics, recordCacheLookups } from '@lib/job-store';
import type { EncodableChunk, EncodeRunner } from '@lib/model-runtime';
import { AppError, ENCODER_BATCH_COST_TOKENS, EncodeChunks, chunkHash, encodeSoftPrompt, planPaddedBatches, softPromptKey, type Config } from '@lib/shared';
import type { z } from 'zod';

type EncodeResult = z.output<typeof EncodeChunks.result>;

/**
 * Plumbing for one encode child: parse, read the source, skip chunks whose soft prompt is stored, encode the rest in
 * token-budget batches, write one blob per chunk, report progress. The model runner does the compute.
 */
export class EncodeProcessor {
  private readonly sources = new Map<string, Promise<string>>();
  /** The one encoder session runs one batch set at a time; jobs held at once (ENCODER_CONCURRENCY) queue here. */
  private lane: Promise<unknown> = Promise.resolve();
  private readonly chunked = new Map<string, Map<string, EncodableChunk[]>>();

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

    // A chunk that tokenizes past the encoder's limit is re-split here, exactly as the in-process chunker does.
    const tPrep = performance.now();
    const encoderId = this.model.encoderId;
    const perRef = p.chunks.map((ref) => this.chunkRef(p.sourceKey, source, ref).map((c) => ({ ...c, ref: ref.i, start: ref.start + c.start, end: ref.start + c.end })));
    const pieces = perRef.flat().map((c) => ({ ...c, key: softPromptKey(p.tenant, encoderId, chunkHash(encoderId, c.text)) }));
    const prep = performance.now() - tPrep;
    const tExists = performance.now();
    const stored = await mapLimit(pieces, this.config.blobFetchConcurrency, (c) => this.blobs.exists(c.key));
    const missing = pieces.filter((_, i) => !stored[i]);
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
          const vectors = await this.model.encoder.encode(batch.map((i) => missing[i]!.ids));
          metrics.encoderBatchSize.observe(batch.length);
          const write = mapLimit(batch, this.config.blobFetchConcurrency, (i, row) =>
            this.blobs.put(missing[i]!.key, encodeSoftPrompt({ encoderId, shape: [width], data: vectors.slice(row * width, (row + 1) * width) }, this.config.softPromptDtype), 'application/octet-stream', { durable: false }),
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
    // The writes not hidden behind inference.
    const upload = performance.now() - t2;
    metrics.stageSeconds.observe({ stage: 'encode_download' }, download / 1000);
    metrics.stageSeconds.observe({ stage: 'encode_inference' }, inference / 1000);
    metrics.stageSeconds.observe({ stage: 'encode_upload' }, upload / 1000);
    metrics.encoderTokens.inc(missing.reduce((a, c) => a + c.ids.length, 0));
    recordCacheLookups(pieces.length - missing.length, missing.length);

    // Progress counts the references the API made: cached when every piece was already stored.
    const missingKeys = new Set(missing.map((c) => c.key));
    let cachedRefs = 0;
    let offset = 0;
    for (const refPieces of perRef) {
      if (pieces.slice(offset, offset + refPieces.length).every((c) => !missingKeys.has(c.key))) cachedRefs++;
      offset += refPieces.length;
    }
    if (p.owner.kind === 'job') await this.store.addProgress(p.owner.id, p.chunks.length - cachedRefs, cachedRefs);
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
      encoderTokens: pieces.reduce((a, c) => a + c.ids.length, 0),
      encodeMs: inference,
    });
  };

  /**
   * A reference's chunks (tokenized), memoised per source beside the source text: a stored document asked again
   * (same source key) is not re-chunked and re-tokenized, which was most of a re-ask's encode step. Sources are
   * immutable under their key, so the memo never goes stale; like the sources, only the last few are kept.
   */
  private chunkRef(sourceKey: string, source: string, ref: { start: number; end: number }): EncodableChunk[] {
    let bySpan = this.chunked.get(sourceKey);
    if (!bySpan) {
      bySpan = new Map();
      this.chunked.set(sourceKey, bySpan);
      if (this.chunked.size > 8) this.chunked.delete(this.chunked.keys().next().value!);
    }
    const span = `${ref.start}:${ref.end}`;
    let chunks = bySpan.get(span);
    if (!chunks) {
      chunks = this.model.chunk(source.slice(ref.start, ref.end));
      bySpan.set(span, chunks);
    }
    return chunks;
  }

  private inLane<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lane.then(fn, fn);
    this.lane = run.catch(() => undefined);
    return run;
  }

  /** Siblings of one flow read the same source: keep the last few in memory. */
  private source(key: string): Promise<string> {
    let text = this.sources.get(key);
    if (!text) {
      text = this.blobs.get(key).then((b) => b.toString('utf8'));
      text.catch(() => this.sources.delete(key));
      this.sources.set(key, text);
      if (this.sources.size > 8) this.sources.delete(this.sources.keys().next().value!);
    }
    return text;
  }
}
