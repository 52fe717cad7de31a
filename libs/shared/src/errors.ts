/**
 * The closed set of error codes. Every failure a user can see carries one of these, with an HTTP status for the API,
 * a retryable flag for the workers (retryable errors are rethrown so BullMQ backs off; the rest fail at once) and an
 * exit code for the CLI. Never decide anything by matching message text.
 */
export const ERROR_CODES = {
  /** The request or a flag is malformed (wrong type, unknown option, bad number). */
  INPUT_INVALID: { status: 400, retryable: false, exitCode: 2 },
  /** The document is empty or only whitespace. */
  INPUT_EMPTY: { status: 400, retryable: false, exitCode: 2 },
  /** The document bytes are not valid UTF-8. */
  INPUT_INVALID_UTF8: { status: 400, retryable: false, exitCode: 2 },
  /**
   * Not text: a document with a NUL anywhere or with more than 5% other control characters (a binary file), or a
   * request string (a JSON value or key, a multipart field) holding a NUL.
   */
  INPUT_NOT_TEXT: { status: 415, retryable: false, exitCode: 2 },
  /** The file type is not one the API extracts text from. */
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, exitCode: 2 },
  /** A PDF, DOCX or HTML file that could not be parsed. */
  DOCUMENT_UNREADABLE: { status: 422, retryable: false, exitCode: 2 },
  /** The document is larger than the configured limit. */
  INPUT_TOO_LARGE: { status: 413, retryable: false, exitCode: 2 },
  /** The question or instruction is longer than the configured limit. */
  QUESTION_TOO_LONG: { status: 400, retryable: false, exitCode: 2 },
  /** Soft tokens + prompt + max new tokens exceed the decoder window. */
  CONTEXT_TOO_LONG: { status: 422, retryable: false, exitCode: 2 },
  /** The input file could not be read. */
  FILE_NOT_FOUND: { status: 400, retryable: false, exitCode: 2 },
  /** The model folder or its manifest does not exist. */
  MODEL_NOT_FOUND: { status: 500, retryable: false, exitCode: 3 },
  /** The manifest is invalid or names a file that is missing or malformed. */
  MODEL_INVALID: { status: 500, retryable: false, exitCode: 3 },
  /** A loaded ONNX session does not match what the manifest declares. */
  MODEL_MISMATCH: { status: 500, retryable: false, exitCode: 3 },
  /** Inference failed inside onnxruntime. */
  INFERENCE_FAILED: { status: 500, retryable: true, exitCode: 1 },
  /**
   * An inference engine (vLLM, SGLang, text-embeddings-inference) could not be reached, timed out, was overloaded
   * (429, 503), failed (5xx) or cut its stream mid-answer; the job is retried with backoff.
   */
  ENGINE_UNAVAILABLE: { status: 503, retryable: true, exitCode: 1 },
  /** The engine refused the request (4xx): a wrong model name or key, or a flag it runs without (--enable-prompt-embeds). */
  ENGINE_REJECTED: { status: 502, retryable: false, exitCode: 1 },
  /** The engine answered outside its protocol: malformed JSON, a missing field, vectors of the wrong count or width. */
  ENGINE_BAD_RESPONSE: { status: 502, retryable: false, exitCode: 1 },
  /** The prompt embeddings a decoder worker assembled failed their checks before leaving it (shape, NaN, a norm over the cap). */
  PROMPT_EMBEDS_INVALID: { status: 500, retryable: false, exitCode: 1 },
  /** A soft-prompt blob failed to parse (bad magic, version, shape or checksum). */
  BLOB_CORRUPT: { status: 500, retryable: false, exitCode: 1 },
  /**
   * A stored document cannot be asked: its stored text is missing or is not UTF-8 (chunk references that fail their
   * checks are not this: they are cut again from the text). Not retryable: upload the document again.
   */
  DOCUMENT_CORRUPT: { status: 409, retryable: false, exitCode: 1 },
  /** The blob store cannot be reached or used (unreachable, refusing, or its folders damaged). */
  STORAGE_UNAVAILABLE: { status: 503, retryable: true, exitCode: 1 },
  /** Redis (queues, job records) cannot be reached. */
  QUEUE_UNAVAILABLE: { status: 503, retryable: true, exitCode: 1 },
  /** The configuration is invalid. */
  CONFIG_INVALID: { status: 500, retryable: false, exitCode: 2 },
  /** A webhook URL that is not http(s), or that points at a loopback, private, link-local or metadata address. */
  WEBHOOK_URL_FORBIDDEN: { status: 400, retryable: false, exitCode: 2 },
  /** A webhook attempt failed (network error, timeout or a non-2xx answer); it is retried with backoff. */
  WEBHOOK_DELIVERY_FAILED: { status: 502, retryable: true, exitCode: 1 },
  /** The job was cancelled by its owner. */
  JOB_CANCELLED: { status: 409, retryable: false, exitCode: 1 },
  /** No valid API key in `Authorization: Bearer ...`. */
  UNAUTHORIZED: { status: 401, retryable: false, exitCode: 2 },
  /** The key is valid but may not use this route (admin routes). */
  FORBIDDEN: { status: 403, retryable: false, exitCode: 2 },
  /** The tenant is over its request rate or its cap on queued work; retry after Retry-After seconds. */
  RATE_LIMITED: { status: 429, retryable: true, exitCode: 1 },
  /** The service is over its queue depth; retry after Retry-After seconds. */
  OVERLOADED: { status: 429, retryable: true, exitCode: 1 },
  /** The resource does not exist (or belongs to another tenant). */
  NOT_FOUND: { status: 404, retryable: false, exitCode: 1 },
  /** The request conflicts with existing state (an idempotency key reused with another body). */
  CONFLICT: { status: 409, retryable: false, exitCode: 1 },
  /** A bug: an invariant did not hold. */
  INTERNAL: { status: 500, retryable: false, exitCode: 1 },
} as const satisfies Record<string, { status: number; retryable: boolean; exitCode: number }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }

  get retryable(): boolean {
    return ERROR_CODES[this.code].retryable;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Record<string, unknown> } {
    return { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isAppError(err: unknown): err is AppError {
  return err instanceof AppError;
}

/** Turns any thrown value into an AppError; unknown errors become INTERNAL with their message kept. */
export function toAppError(err: unknown): AppError {
  if (isAppError(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new AppError('INTERNAL', message, undefined, { cause: err });
}

export function assertNever(value: never, what: string): never {
  throw new AppError('INTERNAL', `unhandled ${what}: ${JSON.stringify(value)} (this is a bug)`);
}
