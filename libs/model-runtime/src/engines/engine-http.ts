import { createParser } from 'eventsource-parser';
import { AppError } from '@lib/shared';
import type { z } from 'zod';

/** Where an engine listens and how long to wait for it. */
export interface EngineEndpoint {
  /** For messages: "vLLM", "SGLang", "TEI". */
  name: string;
  baseUrl: string;
  apiKey?: string;
  /** The longest wait for an answer to start, or for the next piece of a streamed one. */
  timeoutMs: number;
}

/** How much of an engine's error body a message quotes (bodies can be large HTML pages from a proxy). */
const QUOTE_CHARS = 300;

/**
 * One request to an engine, and every way it can go wrong mapped to our codes: unreachable, timed out (no byte for
 * `timeoutMs`), 429/5xx and a stream cut mid-way are ENGINE_UNAVAILABLE (retried with backoff); another 4xx is
 * ENGINE_REJECTED; a body outside the protocol is ENGINE_BAD_RESPONSE; the caller's abort signal is JOB_CANCELLED.
 * Nothing an engine sends can escape as another kind of error.
 */
export class EngineCall {
  private readonly ctrl = new AbortController();
  private timer?: NodeJS.Timeout;
  private reason?: AppError;
  private readonly onAbort = () => this.abort(new AppError('JOB_CANCELLED', 'generation stopped: the job was cancelled'));

  constructor(
    readonly endpoint: EngineEndpoint,
    private readonly signal?: AbortSignal,
  ) {
    if (signal?.aborted) this.onAbort();
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** (Re)starts the idle timer: called when the request goes out and whenever bytes arrive. */
  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(
      () => this.abort(new AppError('ENGINE_UNAVAILABLE', `${this.endpoint.name} sent nothing for ${this.endpoint.timeoutMs} ms`, { timeoutMs: this.endpoint.timeoutMs })),
      this.endpoint.timeoutMs,
    );
  }

  private abort(err: AppError): void {
    this.reason ??= err;
    this.ctrl.abort(err);
  }

  /** Ends the call: stops the timer and drops the connection if the answer is still coming (the engine aborts it). */
  close(): void {
    clearTimeout(this.timer);
    this.signal?.removeEventListener('abort', this.onAbort);
    if (!this.ctrl.signal.aborted) this.ctrl.abort(new AppError('INTERNAL', 'engine call closed'));
  }

  async request(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Response> {
    this.arm();
    const url = new URL(path.replace(/^\//, ''), this.endpoint.baseUrl.endsWith('/') ? this.endpoint.baseUrl : `${this.endpoint.baseUrl}/`);
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers: {
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...(this.endpoint.apiKey ? { authorization: `Bearer ${this.endpoint.apiKey}` } : {}),
        },
        ...(body === undefined ? {} : { body: body instanceof JsonText ? body.text : JSON.stringify(body) }),
        signal: this.ctrl.signal,
      });
    } catch (err) {
      throw this.failure(err, `cannot reach ${this.endpoint.name} at ${url.origin}`);
    }
    if (!res.ok) {
      const text = await this.text(res).catch(() => '');
      throw engineHttpError(this.endpoint.name, res.status, text);
    }
    return res;
  }

  /** The whole body as JSON, checked against its schema. */
  async json<S extends z.ZodType>(res: Response, schema: S): Promise<z.output<S>> {
    const text = await this.text(res);
    return parseEngineJson(this.endpoint.name, text, schema);
  }

  /**
   * The `data:` payloads of a server-sent-event stream, each parsed as JSON, until `data: [DONE]`. A stream that ends
   * without it is reported by the return value (`done: false`): the caller knows whether the answer was complete.
   */
  async *events(res: Response): AsyncGenerator<unknown, { done: boolean }> {
    const type = res.headers.get('content-type') ?? '';
    if (!type.startsWith('text/event-stream')) {
      const text = await this.text(res).catch(() => '');
      throw new AppError('ENGINE_BAD_RESPONSE', `${this.endpoint.name} answered ${type || 'no content type'} where a stream (text/event-stream) was asked for: ${quote(text)}`);
    }
    const pending: string[] = [];
    const parser = createParser({ onEvent: (e) => pending.push(e.data) });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          throw this.failure(err, `${this.endpoint.name}'s stream broke off`);
        }
        if (chunk.done) return { done: false };
        this.arm();
        parser.feed(decoder.decode(chunk.value, { stream: true }));
        while (pending.length > 0) {
          const data = pending.shift()!;
          if (data.trim() === '[DONE]') return { done: true };
          yield parseEngineJson(this.endpoint.name, data);
        }
      }
    } finally {
      reader.releaseLock();
    }
  }

  private async text(res: Response): Promise<string> {
    try {
      return await res.text();
    } catch (err) {
      throw this.failure(err, `${this.endpoint.name}'s answer broke off`);
    }
  }

  /** What a thrown fetch or read error means: our own abort (its reason) or a network failure. */
  private failure(err: unknown, what: string): AppError {
    if (this.reason) return this.reason;
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    return new AppError('ENGINE_UNAVAILABLE', `${what}: ${cause?.code ?? cause?.message ?? (err as Error).message}`, undefined, { cause: err });
  }
}

/** A request body already serialized as JSON (sent as it is). */
export class JsonText {
  constructor(readonly text: string) {}
}

/**
 * Float32 values as a JSON array with 9 significant digits: enough for every float32 to parse back to itself (a
 * reader that rounds the decimal to float32 gets the same bits), in about half the characters of the float64 digits
 * JSON.stringify writes for a float32 (0.1f is 0.100000001, not 0.10000000149011612).
 */
export function float32JsonArray(values: Float32Array): string {
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw new AppError('INTERNAL', `a non-finite value ${v} reached JSON serialization (this is a bug)`);
    // toPrecision(9) may end in zeros or use an exponent: both are valid JSON numbers; trim the zeros.
    parts[i] = v === 0 ? '0' : v.toPrecision(9).replace(/(\.\d*?)0+(e|$)/, '$1$2').replace(/\.(e|$)/, '$1');
  }
  return `[${parts.join(',')}]`;
}

/** An engine's HTTP error as our code: overload, timeouts and 5xx are worth retrying; other 4xx are not. */
export function engineHttpError(name: string, status: number, body: string): AppError {
  const retryable = status === 408 || status === 429 || status >= 500;
  return new AppError(retryable ? 'ENGINE_UNAVAILABLE' : 'ENGINE_REJECTED', `${name} answered ${status}: ${quote(body)}`, { engineStatus: status });
}

/** Parses an engine's JSON; with a schema, checks it. Anything else is ENGINE_BAD_RESPONSE. */
export function parseEngineJson<S extends z.ZodType>(name: string, text: string, schema?: S): z.output<S> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError('ENGINE_BAD_RESPONSE', `${name} sent malformed JSON: ${quote(text)}`);
  }
  return schema ? checkEngineShape(name, json, schema) : (json as z.output<S>);
}

/** Checks a parsed engine answer against its schema; a mismatch is ENGINE_BAD_RESPONSE naming the first problems. */
export function checkEngineShape<S extends z.ZodType>(name: string, json: unknown, schema: S): z.output<S> {
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new AppError('ENGINE_BAD_RESPONSE', `${name} answered outside its protocol (${problems}): ${quote(JSON.stringify(json) ?? '')}`);
  }
  return parsed.data;
}

function quote(text: string): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return JSON.stringify(t.length > QUOTE_CHARS ? `${t.slice(0, QUOTE_CHARS)}…` : t);
}

/**
 * Runs an engine's start checks until they pass, while the engine is unreachable or still loading (ENGINE_UNAVAILABLE:
 * connection refused, 503 while a 7B model loads), for at most `timeoutMs`; any other failure ends the wait at once.
 */
export async function untilEngineAnswers<T>(timeoutMs: number, check: () => Promise<T>, onWait?: (err: AppError, delayMs: number) => void): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 250;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== 'ENGINE_UNAVAILABLE' || Date.now() + delay > deadline) throw err;
      onWait?.(err, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}

/** At most `limit` engine requests of this process in flight; the rest wait their turn in order. */
export class EngineLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
