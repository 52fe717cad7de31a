import { EventSourceParserStream } from 'eventsource-parser/stream';
import pRetry from 'p-retry';
import {
  AppError,
  ERROR_CODES,
  TERMINAL_STATUSES,
  type BatchItem,
  type BatchListPage,
  type BatchResultLine,
  type ErrorCode,
  type GenerationParams,
  type PublicBatch,
  type Deleted,
  type DocumentListPage,
  type JobListPage,
  type JobOptionsInput,
  type JobProgress,
  type JobStatus,
  type JobStreamEvent,
  type Metadata,
  type PublicDocument,
  type PublicJob,
  type Task,
  type WebhookSpec,
} from '@lib/shared';

export interface E2llmClientOptions {
  /** Where the API listens, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>` (needed when the API has API_KEYS configured). */
  apiKey?: string;
  /** Another fetch (tests, proxies); defaults to the global one. */
  fetch?: typeof fetch;
  /**
   * Retries of an answer that says "come back later" (429 RATE_LIMITED/OVERLOADED, 503 QUEUE_UNAVAILABLE and other
   * 503s): each waits the answer's Retry-After (seconds or a date), or backs off from 1 s when it has none. `false`
   * turns retrying off. Other errors are never retried: a 4xx will not change, and a 500 may have done the work.
   */
  retry?: RetryOptions | false;
}

export interface RetryOptions {
  /** Retries after the first attempt (default 3). */
  retries?: number;
  /** The longest wait a retry accepts (default 60 s); an answer asking for longer is returned as the error. */
  maxDelayMs?: number;
  /** Called before each wait, e.g. to tell a user why nothing happens. */
  onRetry?: (info: { error: ApiError; attempt: number; delayMs: number }) => void;
}

/** How `events` follows a job when its connection drops. */
export interface EventsOptions {
  signal?: AbortSignal;
  /** Resume after this event id (what a previous stream's last event carried) instead of starting with a snapshot. */
  lastEventId?: string;
  /** Reconnections in a row without a new event before giving up (default 5). */
  maxReconnects?: number;
  /** Called when the stream dropped and is being reopened from the last event id. */
  onReconnect?: (info: { lastEventId: string | undefined; attempt: number; delayMs: number; reason: string }) => void;
}

/** The document of a request: text, or the bytes of a file (.txt .md .html .pdf .docx) with its name. */
export type DocumentInput = { text: string } | { file: Uint8Array | Blob; filename: string; contentType?: string };

/** What a job asks of its document, as POST /v1/jobs and POST /v1/documents/:id/jobs take it (the contract's
 * JobOptions), and the Idempotency-Key header: the same key and body return the same job; another body is CONFLICT. */
export type JobOptions = JobOptionsInput & { idempotencyKey?: string };

export type CreateJobRequest = DocumentInput & JobOptions;
export type CreateDocumentRequest = DocumentInput & { metadata?: Metadata };

/**
 * POST /v1/batches: the document (text, a file, or a stored document's id) and the items (the contract's BatchItem).
 * With a file the items travel as JSONL in the multipart `items` field; otherwise as a JSON array.
 */
export type CreateBatchRequest = (DocumentInput | { documentId: string }) & { items: BatchItem[]; webhook?: WebhookSpec; metadata?: Metadata; idempotencyKey?: string };

/** GET /v1/jobs's page (the contract's type). */
export type JobList = JobListPage;

export interface WaitOptions {
  /** Poll interval (default 500 ms). */
  intervalMs?: number;
  /** Give up after this long (default: never). */
  timeoutMs?: number;
  /** Called after every poll with the job as it stands. */
  onProgress?: (job: PublicJob) => void;
  signal?: AbortSignal;
}

/** An error answered by the API (its `{error: {code, message, details}}` body), or a failure to reach it. */
export class ApiError extends AppError {
  /** The HTTP status the API answered; 0 when it could not be reached. */
  readonly httpStatus: number;
  /** How long the answer asked the client to wait (its Retry-After header), when it said. */
  readonly retryAfterMs: number | undefined;

  constructor(code: ErrorCode, message: string, httpStatus: number, details?: Record<string, unknown>, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(code, message, details, options);
    this.name = 'ApiError';
    this.httpStatus = httpStatus;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

export function isTerminalStatus(status: JobStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

/** A typed client of the E2LLM API; every method throws ApiError with the API's error code on failure. */
export class E2llmClient {
  private readonly baseUrl: string;
  private readonly apiKey: string | undefined;
  private readonly fetchImpl: typeof fetch;
  private readonly retry: Required<Omit<RetryOptions, 'onRetry'>> & Pick<RetryOptions, 'onRetry'>;

  constructor(options: E2llmClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
    const r = options.retry === false ? { retries: 0 } : (options.retry ?? {});
    this.retry = { retries: r.retries ?? 3, maxDelayMs: r.maxDelayMs ?? 60_000, onRetry: r.onRetry };
    if (!Number.isInteger(this.retry.retries) || this.retry.retries < 0) throw new TypeError(`retry.retries must be a whole number >= 0, got ${r.retries}`);
  }

  /** POST /v1/jobs: answers with the queued job (202). */
  async createJob(req: CreateJobRequest): Promise<PublicJob> {
    const { idempotencyKey, ...rest } = req;
    return this.request<PublicJob>('POST', '/v1/jobs', { body: documentBody(rest, jobFields(rest)), idempotencyKey });
  }

  async getJob(id: string): Promise<PublicJob> {
    return this.request<PublicJob>('GET', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** One page, newest first; pass `nextCursor` as `after` for the next. */
  async listJobs(query: { limit?: number; after?: string } = {}): Promise<JobList> {
    return this.request<JobList>('GET', `/v1/jobs${pageQuery(query)}`);
  }

  async cancelJob(id: string): Promise<PublicJob> {
    return this.request<PublicJob>('POST', `/v1/jobs/${encodeURIComponent(id)}/cancel`);
  }

  /** DELETE /v1/jobs/:id: cancels the job if it has not ended, then deletes its source, result and records. */
  async deleteJob(id: string): Promise<Deleted> {
    return this.request<Deleted>('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
  }

  /** GET /v1/documents: one page, newest first; pass `nextCursor` as `after` for the next. */
  async listDocuments(query: { limit?: number; after?: string } = {}): Promise<DocumentListPage> {
    return this.request<DocumentListPage>('GET', `/v1/documents${pageQuery(query)}`);
  }

  /** DELETE /v1/documents/:id: the document and every job asked on it (`jobs` lists them). */
  async deleteDocument(id: string): Promise<Deleted> {
    return this.request<Deleted>('DELETE', `/v1/documents/${encodeURIComponent(id)}`);
  }

  /** POST /v1/documents: stores and encodes a document once, to be asked many times. */
  async createDocument(req: CreateDocumentRequest): Promise<PublicDocument> {
    const fields: Record<string, unknown> = req.metadata ? { metadata: req.metadata } : {};
    return this.request<PublicDocument>('POST', '/v1/documents', { body: documentBody(req, fields) });
  }

  async getDocument(id: string): Promise<PublicDocument> {
    return this.request<PublicDocument>('GET', `/v1/documents/${encodeURIComponent(id)}`);
  }

  /** POST /v1/documents/:id/jobs: a job on a stored document, no upload. */
  async askDocument(documentId: string, options: JobOptions): Promise<PublicJob> {
    const { idempotencyKey, ...rest } = options;
    return this.request<PublicJob>('POST', `/v1/documents/${encodeURIComponent(documentId)}/jobs`, {
      body: { kind: 'json', value: jobFields(rest) },
      idempotencyKey,
    });
  }

  /**
   * GET /v1/jobs/:id/events as an async iterator. It ends after the terminal `status` event (whose `job` holds the
   * result); breaking out of the loop, or aborting `signal`, closes the connection. When the connection drops before
   * that, it reconnects with Last-Event-ID, so every event arrives exactly once (the server keeps a job's events).
   */
  async *events(id: string, options: EventsOptions = {}): AsyncGenerator<JobStreamEvent, void, undefined> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const maxReconnects = options.maxReconnects ?? 5;
    let lastEventId = options.lastEventId;
    let retryMs = 1000;
    let failures = 0;
    try {
      for (;;) {
        let reason: string;
        try {
          const res = await this.send('GET', `/v1/jobs/${encodeURIComponent(id)}/events`, {
            accept: 'text/event-stream',
            signal: controller.signal,
            ...(lastEventId !== undefined ? { headers: { 'last-event-id': lastEventId } } : {}),
          });
          // 204: the stream already ended, and the last event this client got was its terminal one.
          if (res.status === 204) return;
          if (!res.body) throw new ApiError('INTERNAL', 'the event stream has no body', res.status);
          const parser = new EventSourceParserStream({ onRetry: (ms) => (retryMs = ms) });
          for await (const message of res.body.pipeThrough(new TextDecoderStream()).pipeThrough(parser) as unknown as AsyncIterable<{ event?: string; id?: string; data: string }>) {
            if (message.id) lastEventId = message.id;
            failures = 0;
            const event = toStreamEvent(message.event ?? 'message', message.data);
            if (!event) continue;
            yield event;
            if (event.type === 'status' && isTerminalStatus(event.status)) return;
          }
          reason = 'the stream ended before the job did';
        } catch (err) {
          if (controller.signal.aborted) throw err;
          // Only a dropped connection or an answer that says "later" is worth reopening; a 404 or 401 will not change.
          if (err instanceof ApiError && err.httpStatus !== 0 && err.httpStatus !== 503 && err.httpStatus !== 429 && err.httpStatus < 500) throw err;
          reason = (err as Error).message;
        }
        if (++failures > maxReconnects) {
          throw new ApiError('INTERNAL', `the event stream of job ${id} dropped ${failures} times in a row without a new event (${reason})`, 0, { jobId: id, lastEventId });
        }
        const delayMs = retryMs * 2 ** (failures - 1);
        options.onReconnect?.({ lastEventId, attempt: failures, delayMs, reason });
        await sleep(delayMs, controller.signal);
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      controller.abort();
    }
  }

  /** POST /v1/batches: answers with the batch (202); its items are queued as jobs on one stored document. */
  async createBatch(req: CreateBatchRequest): Promise<PublicBatch> {
    const { items, webhook, metadata, idempotencyKey } = req;
    const options = { ...(webhook ? { webhook } : {}), ...(metadata ? { metadata } : {}) };
    if ('file' in req) {
      const form = new FormData();
      for (const [k, v] of Object.entries(options)) form.set(k, JSON.stringify(v));
      form.set('items', items.map((item) => JSON.stringify(item)).join('\n'));
      const blob = req.file instanceof Blob ? req.file : new Blob([req.file], { type: req.contentType ?? 'application/octet-stream' });
      form.set('file', blob, req.filename);
      return this.request<PublicBatch>('POST', '/v1/batches', { body: { kind: 'form', value: form }, idempotencyKey });
    }
    const document = 'documentId' in req ? { documentId: req.documentId } : { text: req.text };
    return this.request<PublicBatch>('POST', '/v1/batches', { body: { kind: 'json', value: { ...document, ...options, items } }, idempotencyKey });
  }

  /** GET /v1/batches: one page, newest first; pass `nextCursor` as `after` for the next. */
  async listBatches(query: { limit?: number; after?: string } = {}): Promise<BatchListPage> {
    return this.request<BatchListPage>('GET', `/v1/batches${pageQuery(query)}`);
  }

  async getBatch(id: string): Promise<PublicBatch> {
    return this.request<PublicBatch>('GET', `/v1/batches/${encodeURIComponent(id)}`);
  }

  /** GET /v1/batches/:id/results: the lines of the items that have ended, in the order they ended, from `offset` on. */
  async batchResults(id: string, options: { offset?: number } = {}): Promise<BatchResultLine[]> {
    const query = options.offset === undefined ? '' : `?offset=${options.offset}`;
    const res = await this.send('GET', `/v1/batches/${encodeURIComponent(id)}/results${query}`, { accept: 'application/jsonl' });
    return (await res.text())
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as BatchResultLine);
  }

  /** POST /v1/batches/:id/cancel: the items that have not ended are cancelled; the ended ones keep their results. */
  async cancelBatch(id: string): Promise<PublicBatch> {
    return this.request<PublicBatch>('POST', `/v1/batches/${encodeURIComponent(id)}/cancel`);
  }

  /** Polls a batch until it ends (completed or cancelled) and returns it. */
  async waitForBatch(id: string, options: Omit<WaitOptions, 'onProgress'> & { onProgress?: (batch: PublicBatch) => void } = {}): Promise<PublicBatch> {
    const interval = options.intervalMs ?? 500;
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      options.signal?.throwIfAborted();
      const batch = await this.getBatch(id);
      options.onProgress?.(batch);
      if (batch.status === 'completed' || batch.status === 'cancelled') return batch;
      if (Date.now() + interval > deadline) {
        throw new ApiError('INTERNAL', `batch ${id} did not end within ${options.timeoutMs} ms (status ${batch.status})`, 0, { batchId: id, status: batch.status });
      }
      await sleep(interval, options.signal);
    }
  }

  /** Polls a job until it ends (succeeded, failed or cancelled) and returns it; never throws for a failed job. */
  async waitForJob(id: string, options: WaitOptions = {}): Promise<PublicJob> {
    const interval = options.intervalMs ?? 500;
    const deadline = options.timeoutMs === undefined ? Infinity : Date.now() + options.timeoutMs;
    for (;;) {
      options.signal?.throwIfAborted();
      const job = await this.getJob(id);
      options.onProgress?.(job);
      if (isTerminalStatus(job.status)) return job;
      if (Date.now() + interval > deadline) {
        throw new ApiError('INTERNAL', `job ${id} did not end within ${options.timeoutMs} ms (status ${job.status})`, 0, { jobId: id, status: job.status });
      }
      await sleep(interval, options.signal);
    }
  }

  private async request<T>(method: string, path: string, opts: { body?: RequestBody; idempotencyKey?: string } = {}): Promise<T> {
    const res = await this.send(method, path, opts);
    return (await res.json()) as T;
  }

  /**
   * Sends a request; an answer that is not 2xx becomes ApiError with the API's code. A 429 or 503 is sent again after
   * its Retry-After (p-retry counts the attempts; the wait is the server's, not a guess).
   */
  private async send(method: string, path: string, opts: SendOptions): Promise<Response> {
    const { retries, maxDelayMs, onRetry } = this.retry;
    return pRetry(() => this.sendOnce(method, path, opts), {
      retries,
      // The wait happens in shouldRetry (it knows the answer's Retry-After); p-retry adds none of its own.
      minTimeout: 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
      shouldRetry: async ({ error, retriesConsumed }) => {
        if (!(error instanceof ApiError) || !isRetryLater(error)) return false;
        const delayMs = error.retryAfterMs ?? Math.min(maxDelayMs, 1000 * 2 ** retriesConsumed);
        if (delayMs > maxDelayMs) return false;
        onRetry?.({ error, attempt: retriesConsumed + 1, delayMs });
        await sleep(delayMs, opts.signal);
        return true;
      },
    });
  }

  private async sendOnce(method: string, path: string, opts: SendOptions): Promise<Response> {
    const headers: Record<string, string> = { accept: opts.accept ?? 'application/json', ...opts.headers };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
    let body: string | FormData | undefined;
    if (opts.body?.kind === 'json') {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(opts.body.value);
    } else if (opts.body?.kind === 'form') {
      body = opts.body.value; // fetch sets the multipart boundary itself
    }
    const url = `${this.baseUrl}${path}`;
    let res: Response;
    try {
      res = await this.fetchImpl(url, { method, headers, body, signal: opts.signal });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new ApiError('INTERNAL', `cannot reach the API at ${this.baseUrl}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, 0, { url }, { cause: err });
    }
    if (res.ok) return res;
    throw await errorFromResponse(res);
  }
}

/** `?limit=&after=` of a list route, or '' when neither is set. */
function pageQuery(query: { limit?: number; after?: string }): string {
  const params = new URLSearchParams();
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  if (query.after !== undefined) params.set('after', query.after);
  const qs = params.toString();
  return qs ? `?${qs}` : '';
}

type RequestBody = { kind: 'json'; value: Record<string, unknown> } | { kind: 'form'; value: FormData };
type SendOptions = { body?: RequestBody; idempotencyKey?: string; accept?: string; signal?: AbortSignal; headers?: Record<string, string> };

/** 429 (rate limit, overload) and 503 (queue unavailable, or a proxy's "try later"): the request was not taken. */
function isRetryLater(err: ApiError): boolean {
  return err.httpStatus === 429 || err.httpStatus === 503;
}

/** Retry-After as milliseconds: delay-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function jobFields(o: JobOptions): Record<string, unknown> {
  const fields: Record<string, unknown> = { task: o.task };
  if (o.generation !== undefined) fields.generation = o.generation;
  if (o.webhook !== undefined) fields.webhook = o.webhook;
  if (o.metadata !== undefined) fields.metadata = o.metadata;
  return fields;
}

/** JSON for text; multipart for a file, with each field as JSON text (as the API reads multipart fields). */
function documentBody(input: DocumentInput, fields: Record<string, unknown>): RequestBody {
  if ('text' in input) return { kind: 'json', value: { ...fields, text: input.text } };
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, JSON.stringify(v));
  const blob = input.file instanceof Blob ? input.file : new Blob([input.file], { type: input.contentType ?? 'application/octet-stream' });
  form.set('file', blob, input.filename);
  return { kind: 'form', value: form };
}

async function errorFromResponse(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const e = (parsed as { error?: { code?: unknown; message?: unknown; details?: unknown } } | undefined)?.error;
  const known = typeof e?.code === 'string' && Object.hasOwn(ERROR_CODES, e.code);
  const message = typeof e?.message === 'string' ? e.message : `HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
  const details = e?.details && typeof e.details === 'object' ? (e.details as Record<string, unknown>) : undefined;
  const retryAfterMs = parseRetryAfter(res.headers.get('retry-after'));
  const options = retryAfterMs === undefined ? {} : { retryAfterMs };
  if (known) return new ApiError(e!.code as ErrorCode, message, res.status, details, options);
  // An answer without one of our codes (a proxy's 502, say): keep what it said in the details.
  return new ApiError(codeForStatus(res.status), message, res.status, { ...details, ...(typeof e?.code === 'string' ? { code: e.code } : {}) }, options);
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409) return 'CONFLICT';
  if (status === 413) return 'INPUT_TOO_LARGE';
  if (status === 429) return 'OVERLOADED';
  if (status >= 400 && status < 500) return 'INPUT_INVALID';
  return 'INTERNAL';
}

function toStreamEvent(event: string, data: string): JobStreamEvent | null {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return null;
  }
  const v = value as Record<string, unknown>;
  switch (event) {
    case 'status':
      if (v.object === 'job') return { type: 'status', status: v.status as JobStatus, job: value as PublicJob, ...(v.error ? { error: v.error as { code: ErrorCode; message: string } } : {}) };
      return { type: 'status', status: v.status as JobStatus, job: null, ...(v.error ? { error: v.error as { code: ErrorCode; message: string } } : {}) };
    case 'progress':
      return { type: 'progress', progress: v.progress as JobProgress };
    case 'text':
      return { type: 'text', delta: String(v.delta ?? '') };
    default:
      return null; // an event type this client does not know yet: skipped, so new server events never break it
  }
}

/** Splits a text/event-stream body into events (eventsource-parser): name (`message` when unnamed), data and id. */
export async function* parseSse(body: ReadableStream<Uint8Array>): AsyncGenerator<{ event: string; data: string; id?: string }> {
  for await (const m of body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()) as unknown as AsyncIterable<{ event?: string; id?: string; data: string }>) {
    yield { event: m.event ?? 'message', data: m.data, ...(m.id !== undefined ? { id: m.id } : {}) };
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal!.reason);
    }
    signal?.addEventListener('abort', abort, { once: true });
  });
}
