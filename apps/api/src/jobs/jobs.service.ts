import { createHash } from 'node:crypto';
import { Inject, Injectable, Optional } from '@nestjs/common';
import type { Logger } from 'pino';
import { mapLimit, type BlobStore } from '@lib/blob-store';
import { documentKind, type ExtractionPool } from '@lib/extract';
import { ID_PATTERN, newId, type JobStore, type Pipeline } from '@lib/job-store';
import {
  AppError,
  ByteLru,
  DocumentChunks,
  CreateDocumentJson,
  CreateJobJson,
  ENCODE_CHILD_MAX_CHUNKS,
  GenerationParams,
  JobOptions,
  chunkIdsKey,
  countCodePoints,
  documentChunksKey,
  encodeChunkIds,
  groupEncodeChildren,
  sourceKey,
  validateDocumentText,
  validateQuestion,
  type ChunkRef,
  type Config,
  type DocumentRecord,
  type JobRecord,
  type Metadata,
  type ModelManifest,
  type WebhookSpec,
  type Task,
} from '@lib/shared';
import type { PlannedChunk, PlanningPool } from '@lib/model-runtime/planning';
import { WebhookTargets } from '@lib/webhooks';
import type { z } from 'zod';
import { parseWith, type ParsedBody } from '../common/request-body.js';
import { BLOBS, CONFIG, EXTRACTOR, LOGGER, MODEL_INFO, PIPELINE, PLANNER, STORE, WEBHOOK_TARGETS } from '../tokens.js';

/**
 * The API's job logic: validate, store the source, cut chunks and measure the prompt in tokens (on the planning
 * threads, with the package's tokenizers: the chunk list stored is the one the encoder encodes, and a job over the
 * window is refused here), and put one flow on the queue. The API never runs a model.
 */
@Injectable()
export class JobsService {
  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(BLOBS) private readonly blobs: BlobStore,
    @Inject(STORE) private readonly store: JobStore,
    @Inject(PIPELINE) private readonly pipeline: Pipeline,
    @Inject(MODEL_INFO) private readonly manifest: ModelManifest,
    @Inject(PLANNER) private readonly planner: PlanningPool,
    @Inject(EXTRACTOR) private readonly extractor: ExtractionPool,
    @Inject(LOGGER) private readonly logger: Logger,
    @Optional() @Inject(WEBHOOK_TARGETS) webhooks?: WebhookTargets,
  ) {
    this.webhooks = webhooks ?? new WebhookTargets({ allowLoopback: config.webhookAllowLoopback, allowPrivate: config.webhookAllowPrivate });
    this.cuts = new ByteLru(config.cutCacheMb * 2 ** 20);
  }

  /**
   * The chunk lists of texts cut lately, by tenant and text digest: a cut depends only on the text and the package, so
   * the same text submitted again (a new question on it) skips cutting and tokenizing, which at 128k tokens is most
   * of what a job whose soft prompts are all stored costs the API. Per tenant, as the soft prompts are: a shared
   * entry would tell one tenant, by time, what another submitted.
   */
  private readonly cuts: ByteLru<PlannedChunk[]>;

  /** The webhook check at submission (the URL, then its host resolved), under this deployment's address policy. */
  private readonly webhooks: WebhookTargets;

  async createJob(tenant: string, body: ParsedBody, idempotencyKey: string | undefined, traceparent?: string): Promise<{ job: JobRecord; replayed: boolean }> {
    const { text: jsonText, ...options } = body.file
      ? { text: undefined, ...parseWith(JobOptions, body.fields, 'request') }
      : parseWith(CreateJobJson, body.fields, 'request');
    const { task, generation } = await this.checkOptions(options);
    const text = await this.documentText(body, jsonText);
    const digest = textDigest(body, text);
    const source: JobSource = { text, chars: text.length, sha256: digest, cut: (task, limit) => this.cut(tenant, text, digest, task, limit) };
    return this.enqueueJob(tenant, { source, task, generation, options, documentId: null, traceparent }, idempotencyKey);
  }

  async createDocumentJob(tenant: string, documentId: string, body: ParsedBody, idempotencyKey: string | undefined, traceparent?: string): Promise<{ job: JobRecord; replayed: boolean }> {
    if (body.file) throw new AppError('INPUT_INVALID', 'a job on a stored document takes no file');
    const doc = await this.getDocument(tenant, documentId);
    if (doc.status === 'failed') throw new AppError('CONFLICT', `document ${documentId} failed to encode: ${doc.error?.message ?? ''}`);
    const options = parseWith(JobOptions, body.fields, 'request');
    const { task, generation } = await this.checkOptions(options);
    return this.enqueueJob(tenant, { source: await this.documentSource(doc), task, generation, options, documentId: doc.id, traceparent }, idempotencyKey);
  }

  /**
   * A batch's jobs on one stored document, each as POST /v1/documents/:id/jobs makes one (no webhook of their own):
   * the document's chunk references are read once, every item is measured against the window before any is
   * queued (`planned` runs in between: the batch is stored there), then all are queued. `named` turns an item's
   * refusal into one that names the item.
   */
  async createDocumentJobs(
    tenant: string,
    doc: DocumentRecord,
    items: readonly { jobId: string; task: Task; generation: GenerationParams; metadata: Metadata }[],
    named: (index: number, err: AppError) => AppError,
    traceparent: string | undefined,
    planned: () => Promise<void>,
  ): Promise<JobRecord[]> {
    if (doc.status === 'failed') throw new AppError('CONFLICT', `document ${doc.id} failed to encode: ${doc.error?.message ?? ''}`);
    const source = await this.documentSource(doc);
    // One at a time: the planning threads' queue is bounded (OVERLOADED past it), and a batch must not fill it.
    const plans: Cut[] = [];
    for (const [i, item] of items.entries()) {
      plans.push(await this.planJob(source, item.task, item.generation).catch((err: unknown) => Promise.reject(err instanceof AppError ? named(i, err) : err)));
    }
    await planned();
    return mapLimit(items, 16, (item, i) =>
      this.submitJob(tenant, item.jobId, { source, task: item.task, generation: item.generation, options: { metadata: item.metadata }, documentId: doc.id, traceparent }, plans[i]!),
    );
  }

  async createDocument(tenant: string, body: ParsedBody, traceparent?: string): Promise<DocumentRecord> {
    const { text: jsonText, metadata } = body.file
      ? { text: undefined, ...parseWith(CreateDocumentJson.omit({ text: true }), body.fields, 'request') }
      : parseWith(CreateDocumentJson, body.fields, 'request');
    const text = await this.documentText(body, jsonText);
    const digest = textDigest(body, text);
    const id = newId('doc');
    // A document is refused when even its soft tokens alone would not fit the window: no question could be asked.
    const window = this.manifest.decoder.window;
    const cut = await this.cut(tenant, text, digest, undefined, window);
    const { batches, chunks } = cut;
    if (chunks > window) throw new AppError('CONTEXT_TOO_LONG', `the document makes more than ${window} soft tokens, the decoder window`, { window });
    const key = sourceKey(id);
    const refs: DocumentChunks = { v: 2, sourceSha256: digest(), chars: text.length, chunks, batches };
    const idsKey = cut.ids ? chunkIdsKey(id) : undefined;
    await Promise.all([
      this.blobs.put(key, text, 'text/plain; charset=utf-8'),
      this.blobs.put(documentChunksKey(id), JSON.stringify(refs), 'application/json'),
      idsKey && this.blobs.put(idsKey, cut.ids!, 'application/octet-stream'),
    ]);
    const now = new Date();
    const doc: DocumentRecord = {
      id,
      tenant,
      status: 'encoding',
      sourceKey: key,
      chars: text.length,
      chunks,
      metadata: metadata ?? {},
      createdAt: now.toISOString(),
      readyAt: null,
      expiresAt: new Date(now.getTime() + this.config.jobTtlSeconds * 1000).toISOString(),
      error: null,
    };
    await this.store.createDocument(doc);
    await this.pipeline.submitDocument(id, tenant, key, batches, traceparent, idsKey);
    return doc;
  }

  async getJob(tenant: string, id: string): Promise<JobRecord> {
    const job = ID_PATTERN.test(id) ? await this.store.getJob(id) : null;
    if (!job || job.tenant !== tenant) throw new AppError('NOT_FOUND', `no job ${JSON.stringify(id.slice(0, 64))}`);
    return job;
  }

  async getDocument(tenant: string, id: string): Promise<DocumentRecord> {
    const doc = ID_PATTERN.test(id) ? await this.store.getDocument(id) : null;
    if (!doc || doc.tenant !== tenant) throw new AppError('NOT_FOUND', `no document ${JSON.stringify(id.slice(0, 64))}`);
    return doc;
  }

  async listJobs(tenant: string, limit: number, after?: string) {
    return this.store.listJobs(tenant, limit, after);
  }

  async cancel(tenant: string, id: string): Promise<JobRecord> {
    const job = await this.getJob(tenant, id);
    if (this.store.isTerminal(job.status)) throw new AppError('CONFLICT', `job ${id} has already ended (${job.status})`);
    await this.pipeline.cancel(id);
    return this.getJob(tenant, id);
  }

  private async checkOptions(options: z.output<typeof JobOptions>): Promise<{ task: Task; generation: GenerationParams }> {
    const checked = this.checkTask(options);
    await this.checkWebhook(options.webhook);
    return checked;
  }

  /** A job's task and generation settings against this deployment's limits (defaults filled in). */
  checkTask(options: Pick<z.output<typeof JobOptions>, 'task' | 'generation'>): { task: Task; generation: GenerationParams } {
    const task = options.task;
    if (task.type === 'qa') task.question = validateQuestion(task.question, this.config.maxQuestionChars);
    if (task.type === 'instruct') task.instruction = validateQuestion(task.instruction, this.config.maxQuestionChars, 'instruction');
    const generation = GenerationParams.parse(options.generation ?? {});
    if (generation.minNewTokens > generation.maxNewTokens) {
      throw new AppError('INPUT_INVALID', 'generation.minNewTokens must not exceed generation.maxNewTokens');
    }
    if (generation.maxNewTokens > this.config.maxNewTokensLimit) {
      throw new AppError('INPUT_INVALID', `generation.maxNewTokens must be at most ${this.config.maxNewTokensLimit}`);
    }
    return { task, generation };
  }

  /**
   * Binds an Idempotency-Key (a job's or a batch's) to the request's fingerprint and a proposed id: `created` false
   * names the id an earlier request with the same key and body made (another body is CONFLICT).
   */
  async claimIdempotencyKey(tenant: string, key: string, fingerprint: string, proposedId: string): Promise<{ jobId: string; created: boolean }> {
    if (!/^[\x21-\x7e]{1,255}$/.test(key)) throw new AppError('INPUT_INVALID', 'Idempotency-Key must be 1-255 visible ASCII characters');
    return this.store.claimIdempotencyKey(tenant, key, fingerprint, proposedId);
  }

  /** A webhook at submission (a job's or a batch's): configured here, and its URL allowed by the address policy. */
  async checkWebhook(webhook: WebhookSpec | undefined): Promise<void> {
    if (webhook) {
      if (!this.config.webhookSecret) throw new AppError('INPUT_INVALID', 'webhooks are not configured on this server (WEBHOOK_SECRET)');
      // The URL, and the addresses its host resolves to now: judged as delivery will judge them (libs/webhooks).
      await this.webhooks.check(webhook.url);
    }
  }

  private async documentText(body: ParsedBody, text: string | undefined): Promise<string> {
    if (body.file) {
      const kind = documentKind(body.file.fileName, body.file.mimeType);
      return this.extractor.extract(body.file.bytes, kind, {
        maxChars: this.config.maxDocumentChars,
        maxPdfPages: this.config.maxPdfPages,
        maxDocxUncompressedBytes: this.config.maxDocxBytes,
        timeoutMs: this.config.extractTimeoutMs,
      });
    }
    if (typeof text !== 'string') throw new AppError('INPUT_INVALID', 'send the document as "text" (JSON) or as a multipart "file"');
    return validateDocumentText(text, this.config.maxDocumentChars);
  }

  /**
   * A stored document as a job's source: its chunk references as stored when it was created, so the API neither reads
   * the source nor cuts it again. Without usable references (see storedChunkRefs) the stored text is cut again.
   */
  private async documentSource(doc: DocumentRecord): Promise<JobSource> {
    const t0 = performance.now();
    const refs = await this.storedChunkRefs(doc);
    if (refs === undefined) {
      const text = await this.storedText(doc);
      const digest = once(() => sha256(text));
      return { key: doc.sourceKey, chars: text.length, sha256: digest, cut: (task, limit) => this.cut(doc.tenant, text, digest, task, limit) };
    }
    const stored = refs;
    const loadMs = performance.now() - t0;
    // A ready document's soft prompts are stored, so its encode children only confirm that: fewer, larger children
    // (up to the contract's limit) cost less queue and worker time. While it is still encoding, the document's own
    // children are running: the job's mirror them.
    const batches = doc.status === 'ready' ? regroup(stored.batches, ENCODE_CHILD_MAX_CHUNKS) : stored.batches;
    return {
      key: doc.sourceKey,
      chars: stored.chars,
      sha256: () => stored.sourceSha256,
      cut: async (task) => ({ batches, chunks: stored.chunks, chunkMs: loadMs, promptTokens: await this.planner.promptTokens(task) }),
    };
  }

  /**
   * A document's chunk references, or undefined when its text must be cut again: none stored (a document stored before
   * they were kept), an older cut (version 1: by characters alone, the encoder split them again by tokens), or a copy
   * that fails its checks (truncated, not JSON, not a DocumentChunks: the schema checks every chunk is there once and
   * inside the text). The references are a cache of the cut, which depends only on the text and the model, so a damaged
   * copy is recomputed, as a damaged soft prompt is re-encoded, and never reaches the encoder.
   */
  private async storedChunkRefs(doc: DocumentRecord): Promise<DocumentChunks | undefined> {
    let bytes: Buffer;
    try {
      bytes = await this.blobs.get(documentChunksKey(doc.id));
    } catch (err) {
      if (err instanceof AppError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
    let stored: unknown;
    try {
      stored = JSON.parse(bytes.toString('utf8'));
    } catch {
      stored = undefined;
    }
    if (typeof stored === 'object' && stored !== null && 'v' in stored && stored.v === 1) return undefined;
    const parsed = DocumentChunks.safeParse(stored);
    if (parsed.success) return parsed.data;
    this.logger.warn({ documentId: doc.id, bytes: bytes.length, problem: parsed.error.issues[0]?.message }, 'stored chunk references fail their checks: cutting the text again');
    return undefined;
  }

  /** A document's stored text; DOCUMENT_CORRUPT (409) when it is gone or is not UTF-8: the document cannot be asked. */
  private async storedText(doc: DocumentRecord): Promise<string> {
    let bytes: Buffer;
    try {
      bytes = await this.blobs.get(doc.sourceKey);
    } catch (err) {
      if (!(err instanceof AppError && err.code === 'NOT_FOUND')) throw err;
      this.logger.error({ documentId: doc.id }, 'a stored document has lost its text');
      throw new AppError('DOCUMENT_CORRUPT', `document ${doc.id} cannot be asked: its stored text is missing; upload it again`);
    }
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      this.logger.error({ documentId: doc.id, bytes: bytes.length }, 'a stored document text is not UTF-8');
      throw new AppError('DOCUMENT_CORRUPT', `document ${doc.id} cannot be asked: its stored text is damaged; upload it again`);
    }
  }

  /**
   * Cuts a text into the chunks the encoder will encode (by the encoder's tokens, on a planning thread, stopping past
   * `limit` chunks; or from the cut cache) and measures the task's prompt; the chunks are batched for encode children
   * by their tokens.
   */
  private async cut(tenant: string, text: string, digest: () => string, task: Task | undefined, limit: number): Promise<Cut> {
    const t0 = performance.now();
    // Every chunk holds at most chunkChars code points: a text longer than the window allows is refused without
    // cutting it (a few milliseconds on the event loop, against seconds of segmenting and tokenizing).
    const least = Math.ceil(countCodePoints(text) / this.manifest.prompt.chunking.chunkChars);
    if (least > limit) {
      throw new AppError('CONTEXT_TOO_LONG', `the document makes at least ${least} soft tokens; at most ${limit} fit the decoder window with the new tokens`, {
        chunks: least,
        window: this.manifest.decoder.window,
      });
    }
    const cacheKey = `${tenant}\0${digest()}`;
    let chunks = this.cuts.get(cacheKey);
    const fromCache = chunks !== undefined;
    let promptTokens = 0;
    // The chunks' encoder ids, for the encoder workers (a cut from the cache has none: its soft prompts are likely
    // stored, and a worker tokenizes the few that are not).
    let ids: Buffer | undefined;
    if (chunks) {
      if (task) promptTokens = await this.planner.promptTokens(task);
    } else {
      const plan = await this.planner.plan(text, task, limit);
      ({ chunks, promptTokens } = plan);
      // Only a whole cut is kept: one stopped past `limit` is not the text's cut.
      if (chunks.length <= limit) {
        this.cuts.set(cacheKey, chunks, 64 + chunks.length * 80);
        let at = 0;
        ids = encodeChunkIds({ tokenizer: plan.tokenizer, chunks: chunks.map((c) => plan.ids.subarray(at, (at += c.tokens))) });
      }
    }
    // Children are sized by chunks, not by the workers' batch budget (the API does not know their execution provider):
    // at most ENCODE_JOB_MAX_CHUNKS chunks, each within the encoder's token limit.
    const grouped = groupEncodeChildren(chunks, { maxChunks: this.config.encodeJobMaxChunks, maxTokens: this.config.encodeJobMaxChunks * this.manifest.encoder.maxTokens });
    // A cut from the cache is a text this tenant submitted lately, whose soft prompts its earlier job stored: as for a
    // ready document, the children only confirm that, and fewer, larger ones cost less queue and worker time. Were
    // some evicted or deleted meanwhile, a larger child encodes them, on one worker.
    const batches = fromCache ? regroup(grouped, ENCODE_CHILD_MAX_CHUNKS) : grouped;
    return { batches, chunks: chunks.length, chunkMs: performance.now() - t0, promptTokens, ids };
  }

  private async enqueueJob(tenant: string, input: JobInput, idempotencyKey: string | undefined): Promise<{ job: JobRecord; replayed: boolean }> {
    let id = newId('job');
    if (idempotencyKey !== undefined) {
      const fingerprint = sha256(
        JSON.stringify({ text: input.source.sha256(), task: input.task, generation: input.generation, webhook: input.options.webhook ?? null, metadata: input.options.metadata ?? {}, documentId: input.documentId }),
      );
      const claim = await this.claimIdempotencyKey(tenant, idempotencyKey, fingerprint, id);
      if (!claim.created) {
        const existing = await this.store.getJob(claim.jobId);
        if (!existing) throw new AppError('CONFLICT', 'a request with this Idempotency-Key is still being created; retry shortly');
        return { job: existing, replayed: true };
      }
      id = claim.jobId;
    }
    try {
      const plan = await this.planJob(input.source, input.task, input.generation);
      return { job: await this.submitJob(tenant, id, input, plan), replayed: false };
    } catch (err) {
      if (idempotencyKey !== undefined) await this.store.releaseIdempotencyKey(tenant, idempotencyKey).catch(() => undefined);
      throw err;
    }
  }

  /** The job's chunks and prompt, measured against the decoder window (CONTEXT_TOO_LONG when they do not fit). */
  private async planJob(source: JobSource, task: Task, generation: GenerationParams): Promise<Cut> {
    const window = this.manifest.decoder.window;
    const maxNewTokens = generation.maxNewTokens;
    const cut = await source.cut(task, window - maxNewTokens);
    const { chunks, promptTokens } = cut;
    const need = promptTokens + chunks + maxNewTokens;
    if (need > window) {
      throw new AppError(
        'CONTEXT_TOO_LONG',
        `the document makes ${chunks}${chunks > window - maxNewTokens ? ' or more' : ''} soft tokens; with the prompt (${promptTokens} tokens) and ${maxNewTokens} new tokens that is over the decoder window of ${window}`,
        { chunks, need, window },
      );
    }
    return cut;
  }

  /** Stores a planned job and queues its flow. */
  private async submitJob(tenant: string, id: string, input: JobInput, { batches, chunks, chunkMs, ids }: Cut): Promise<JobRecord> {
    const key = input.source.key ?? sourceKey(id);
    const idsKey = ids ? chunkIdsKey(id) : undefined;
    await Promise.all([
      input.source.text !== undefined && this.blobs.put(key, input.source.text, 'text/plain; charset=utf-8'),
      idsKey && this.blobs.put(idsKey, ids!, 'application/octet-stream'),
    ]);
    const now = new Date();
    const job: JobRecord = {
      id,
      tenant,
      status: 'queued',
      task: input.task,
      generation: input.generation,
      webhook: input.options.webhook ?? null,
      metadata: input.options.metadata ?? {},
      documentId: input.documentId,
      sourceKey: key,
      chars: input.source.chars,
      chunkMs,
      progress: { chunksTotal: chunks, chunksEncoded: 0, chunksCached: 0 },
      createdAt: now.toISOString(),
      startedAt: null,
      finishedAt: null,
      expiresAt: new Date(now.getTime() + this.config.jobTtlSeconds * 1000).toISOString(),
      result: null,
      error: null,
    };
    await this.store.createJob(job);
    try {
      // On a document still encoding, the job waits for it (Pipeline.holdForDocument): each chunk is encoded once, by
      // the document, and the job's own encode children, queued when it is ready, only find them stored.
      const held = input.documentId !== null && (await this.pipeline.holdForDocument(input.documentId, id, regroup(batches, ENCODE_CHILD_MAX_CHUNKS), input.traceparent));
      if (!held) await this.pipeline.submitJob(job, batches, input.traceparent, idsKey);
    } catch (err) {
      // Accepted jobs always end: a job whose flow could not be queued is failed, readable, not left queued.
      const e = new AppError('QUEUE_UNAVAILABLE', `the job could not be queued: ${(err as Error).message}`);
      await this.store.transition(id, 'failed', { error: { code: e.code, message: e.message } }).catch(() => undefined);
      throw e;
    }
    this.logger.info({ jobId: id, chunks, batches: batches.length, documentId: input.documentId }, 'job queued');
    return job;
  }
}

/** What a job is made from: its source, its checked task and settings, and its options as the request gave them. */
interface JobInput {
  source: JobSource;
  task: Task;
  generation: GenerationParams;
  options: Pick<z.output<typeof JobOptions>, 'webhook' | 'metadata'>;
  documentId: string | null;
  traceparent?: string;
}

/**
 * Where a job's text comes from: a request's text (`text`, stored under the job's own key), or a stored document
 * (`key`: its source is stored already).
 */
type JobSource = ({ text: string; key?: never } | { key: string; text?: never }) & {
  chars: number;
  /** sha256 (hex) of the text, for idempotency fingerprints. */
  sha256: () => string;
  /**
   * The encode children's chunk references and the task's prompt tokens; called once any idempotent replay is ruled
   * out. A text is cut only as far as `limit` chunks (the most that could fit the window).
   */
  cut: (task: Task, limit: number) => Promise<Cut>;
};

interface Cut {
  batches: ChunkRef[][];
  /** Soft tokens: one per chunk. */
  chunks: number;
  chunkMs: number;
  promptTokens: number;
  /** The chunks' encoder ids (chunk-ids.ts), when this cut measured them. */
  ids?: Buffer;
}

/** A request text's sha256: the one its JSON body's thread computed (a JSON text is checked, never changed), or its own. */
function textDigest(body: ParsedBody, text: string): () => string {
  const fromThread = body.file === null ? body.textSha256 : undefined;
  return fromThread === undefined ? once(() => sha256(text)) : () => fromThread;
}

/** A function computed on its first call and remembered. */
function once<T>(fn: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: fn() }).v;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** Consecutive batches joined while they fit `max` references each (their order kept). */
function regroup(batches: ChunkRef[][], max: number): ChunkRef[][] {
  const out: ChunkRef[][] = [];
  for (const b of batches) {
    const last = out.at(-1);
    if (last && last.length + b.length <= max) last.push(...b);
    else out.push([...b]);
  }
  return out;
}
