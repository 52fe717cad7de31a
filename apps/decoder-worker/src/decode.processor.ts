import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import { mapLimit, type BlobStore } from '@lib/blob-store';
import type { z } from 'zod';
import { metrics, type JobStore, type Pipeline } from '@lib/job-store';
import type { DecodeRunner, E2llmModel, TextChunk } from '@lib/model-runtime';
import { AppError, ByteLru, DecodeJob, chunkIdsKey, EncodeChunks, IndexDocument, chunkHash, pageStarts, decodeSoftPrompt, encodeSoftPrompt, resultKey, softPromptKey, softPromptKeyHash, type Config, type JobResult } from '@lib/shared';

/**
 * Plumbing for a decode parent: gather the children's soft-prompt keys in document order, fetch the blobs in
 * parallel, run the adapter and the decoder (streaming text as events), store the result and end the job.
 */
export class DecodeProcessor {
  constructor(
    private readonly model: DecodeRunner,
    private readonly blobs: BlobStore,
    private readonly store: JobStore,
    private readonly pipeline: Pipeline,
    private readonly config: Pick<Config, 'blobFetchConcurrency' | 'softPromptDtype' | 'softPromptCacheMb'>,
    /** Loads an encoder the first time a soft prompt must be encoded again (rare: the decoder worker has none). */
    private readonly loadEncoder: () => Promise<E2llmModel>,
  ) {
    this.recent = new ByteLru(config.softPromptCacheMb * 2 ** 20);
  }

  private encoder?: Promise<E2llmModel>;
  /**
   * Soft prompts already read and checked, by key. Keys are content-addressed (tenant, encoder, chunk text), so an
   * entry never goes stale; a blob lost from the store after it was read is simply not needed again.
   */
  private readonly recent: ByteLru<Float32Array>;

  decodeJob = async (p: z.output<typeof DecodeJob.payload>, job: Job, log: Logger): Promise<{ resultKey: string }> => {
    const record = await this.store.getJob(p.jobId);
    if (!record) throw new AppError('NOT_FOUND', `job ${p.jobId} no longer exists`);
    if (record.status === 'cancelled') throw new AppError('JOB_CANCELLED', 'the job was cancelled');
    await this.store.transition(p.jobId, 'decoding');

    const tGather = performance.now();
    const children = await this.childResults(job);
    const gatherMs = performance.now() - tGather;
    // Every chunk is encoded: the ids the API measured for the encoders are no longer needed.
    this.dropMeasuredIds(p.jobId, log);
    // Document order: by chunk index (one soft prompt per chunk the API cut).
    const pieces = children.flatMap((c) => c.keys.map((key, k) => ({ key, ref: c.refs[k]!, span: c.spans[k]! }))).sort((a, b) => a.ref - b.ref);
    const keys = pieces.map((p) => p.key);
    const spans = pieces.map((p) => p.span);
    const prompt = this.model.promptIds(record.task);
    this.model.checkBudget(keys.length, prompt, record.generation.maxNewTokens);

    const t0 = performance.now();
    const width = this.model.pkg.manifest.encoder.width;
    const embeddings = new Float32Array(keys.length * width);
    await mapLimit(keys, this.config.blobFetchConcurrency, async (key, i) => {
      embeddings.set(await this.softPrompt(key, spans[i]!, record.sourceKey, log), i * width);
    });
    const downloadMs = performance.now() - t0;
    const t1 = performance.now();
    const softTokens = await this.model.adapter.run(embeddings, keys.length);
    const adapterMs = performance.now() - t1;
    // The chunk texts, for evidence and expansion, from the stored source: nothing is uploaded or encoded again.
    const { chunks, pages } = await this.chunkTexts(record.sourceKey, pieces, log);

    // Cancellation is polled, not pushed: a cancelled job stops within one poll interval of generation.
    const abort = new AbortController();
    const poll = setInterval(() => {
      // Cancelled, or deleted (no record): either way nobody wants the answer any more.
      void this.store.getJob(p.jobId).then((r) => (r === null || r.status === 'cancelled') && abort.abort(), () => undefined);
    }, 500);
    let grounded;
    try {
      grounded = await this.model.generateGrounded(
        { chunks, softTokens, task: record.task, params: record.generation, pageStarts: pages, cacheScope: record.tenant },
        {
          signal: abort.signal,
          onText: (delta) => void this.store.publish(p.jobId, { type: 'text', delta }).catch(() => undefined),
        },
      );
    } finally {
      clearInterval(poll);
    }
    const gen = grounded.gen;
    const finishedAt = Date.now();
    const result: JobResult = {
      text: gen.text,
      finishReason: gen.finishReason,
      usage: {
        chars: record.chars,
        chunks: keys.length,
        encoderTokens: children.reduce((a, c) => a + c.encoderTokens, 0),
        softTokens: grounded.softTokens,
        promptTokens: grounded.promptTokens,
        generatedTokens: gen.tokens.length,
        ...grounded.expansion,
      },
      timings: {
        chunkMs: record.chunkMs,
        encodeMs: children.reduce((a, c) => a + c.encodeMs, 0),
        adapterMs,
        scoringMs: grounded.scoringMs,
        expandMs: grounded.expandMs,
        prefillMs: gen.prefillMs,
        decodeMs: gen.decodeMs,
        totalMs: finishedAt - Date.parse(record.createdAt),
        queueMs: Date.parse(record.startedAt ?? record.createdAt) - Date.parse(record.createdAt),
      },
      evidence: grounded.evidence,
    };
    metrics.stageSeconds.observe({ stage: 'decode_fetch' }, downloadMs / 1000);
    metrics.stageSeconds.observe({ stage: 'adapter' }, adapterMs / 1000);
    metrics.stageSeconds.observe({ stage: 'prefill' }, gen.prefillMs / 1000);
    metrics.stageSeconds.observe({ stage: 'decode' }, gen.decodeMs / 1000);
    metrics.generatedTokens.inc(gen.tokens.length);
    if (gen.decodeMs > 0) metrics.decodeTokensPerSecond.set((gen.tokens.length * 1000) / gen.decodeMs);
    const key = resultKey(p.jobId);
    const tStore = performance.now();
    await this.blobs.put(key, JSON.stringify(result), 'application/json');
    if (!(await this.pipeline.finishJob(p.jobId, 'succeeded', { result })) && !(await this.store.ownerExists({ kind: 'job', id: p.jobId }))) {
      // Deleted while it generated: the delete has already removed what it found, so this result goes too.
      await this.blobs.delete(key);
      throw new AppError('JOB_CANCELLED', `job ${p.jobId} was deleted`);
    }
    const storeMs = performance.now() - tStore;
    log.info(
      {
        softTokens: keys.length,
        generated: gen.tokens.length,
        gatherMs: Math.round(gatherMs),
        downloadMs: Math.round(downloadMs),
        adapterMs: Math.round(adapterMs),
        prefillMs: Math.round(gen.prefillMs),
        decodeMs: Math.round(gen.decodeMs),
        storeMs: Math.round(storeMs),
      },
      'decoded',
    );
    return { resultKey: key };
  };

  /** Best effort: one left behind (a failed delete) goes with its owner's other blobs (lifecycle). */
  private dropMeasuredIds(ownerId: string, log: Logger): void {
    this.blobs.delete(chunkIdsKey(ownerId)).catch((err: unknown) => log.warn({ err, ownerId }, 'could not delete the chunk ids; they go with the owner'));
  }

  async release(): Promise<void> {
    await (await this.encoder)?.release();
  }

  indexDocument = async (p: z.output<typeof IndexDocument.payload>, job: Job, log: Logger): Promise<{ chunks: number }> => {
    const chunks = (await this.childResults(job)).reduce((a, c) => a + c.keys.length, 0);
    this.dropMeasuredIds(p.documentId, log);
    // Ready, then the jobs held for it are queued (Pipeline.holdForDocument).
    await this.pipeline.documentEnded(p.documentId, 'ready');
    return { chunks };
  };

  /**
   * One chunk's soft prompt. A blob that is missing (evicted, deleted) or fails its checks is encoded again from
   * the source and stored, never decoded as garbage.
   */
  private async softPrompt(key: string, span: [number, number], sourceKey: string, log: Logger): Promise<Float32Array> {
    const known = this.recent.get(key);
    if (known) return known;
    const vector = await this.readSoftPrompt(key, span, sourceKey, log);
    this.recent.set(key, vector, vector.byteLength);
    return vector;
  }

  private async readSoftPrompt(key: string, span: [number, number], sourceKey: string, log: Logger): Promise<Float32Array> {
    try {
      return decodeSoftPrompt(await this.blobs.get(key), { encoderId: this.model.encoderId, chunkHash: softPromptKeyHash(key) }).data;
    } catch (err) {
      if (!(err instanceof AppError) || (err.code !== 'NOT_FOUND' && err.code !== 'BLOB_CORRUPT')) throw err;
      log.warn({ key, code: err.code }, 're-encoding a lost or corrupt soft prompt');
    }
    const encoder = await (this.encoder ??= this.loadEncoder());
    const text = (await this.blobs.get(sourceKey)).toString('utf8').slice(span[0], span[1]);
    const hash = chunkHash(encoder.encoderId, text);
    if (softPromptKey(key.split('/')[1]!, encoder.encoderId, hash) !== key) {
      throw new AppError('INTERNAL', `the source no longer matches soft prompt ${key} (this is a bug)`);
    }
    const vector = await encoder.chunkEncoder.encodeChunks([{ text, ids: encoder.encoderIds(text) }]);
    await this.blobs.put(key, encodeSoftPrompt({ encoderId: encoder.encoderId, chunkHash: hash, shape: [vector.length], data: vector }, this.config.softPromptDtype), 'application/octet-stream', { durable: false });
    return vector;
  }

  /**
   * Each piece's text from the stored source, as the encoder cut it. A source that has gone (expired, deleted) leaves
   * the job to be answered from its soft tokens alone: usage says `source_missing` and the evidence is empty.
   */
  private async chunkTexts(
    sourceKey: string,
    pieces: { ref: number; span: [number, number] }[],
    log: Logger,
  ): Promise<{ chunks: TextChunk[] | null; pages?: number[] }> {
    let source: string;
    try {
      source = (await this.blobs.get(sourceKey)).toString('utf8');
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'NOT_FOUND') throw err;
      log.warn({ sourceKey }, 'the source is missing: answering without expansion or evidence');
      return { chunks: null };
    }
    const chunks = pieces.map((p, index) => ({ index, start: p.span[0], end: p.span[1], text: source.slice(p.span[0], p.span[1]) }));
    return { chunks, pages: pageStarts(source) };
  }

  /** The encode children's results. */
  private async childResults(job: Job) {
    const values = Object.values(await job.getChildrenValues());
    return values.map((v) => EncodeChunks.result.parse(v)).sort((a, b) => a.batch - b.batch);
  }
}
