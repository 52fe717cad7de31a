import type { Request, Response } from 'express';
import multer from 'multer';
import { z } from 'zod';
import { AppError } from '@lib/shared';

export interface UploadedDocument {
  bytes: Buffer;
  fileName: string;
  mimeType: string;
}

export interface ParsedBody {
  /** JSON fields (for multipart, each form field holding JSON text is parsed). */
  fields: Record<string, unknown>;
  file: UploadedDocument | null;
  /** sha256 (hex) of the JSON body's `text`, when it was computed off the event loop with the parse (JsonBodyPool). */
  textSha256?: string;
}

const JSON_FIELDS = ['task', 'generation', 'webhook', 'metadata'];

/** Keys no request needs and some code treats specially (prototype pollution): refused anywhere in a request. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** How deep a request's JSON may nest. The deepest a valid request goes is 3 (generation.expand.chunks). */
export const MAX_JSON_DEPTH = 32;

/** The most items (array elements and object members) one JSON text of a request may hold; a valid one holds dozens. */
export const MAX_JSON_ITEMS = 10_000;

/** The one accepted charset, under its two spellings (WHATWG's labels for UTF-8 include both). */
const UTF8 = new Set(['utf-8', 'utf8']);

/**
 * The body of a create request: application/json, or multipart/form-data with one `file` and JSON-valued fields
 * (`task`, `generation`, `webhook`, `metadata`). Any other content type is 415.
 *
 * The API installs no body parser: a body is read here only, by the route, so only after its guard has resolved the
 * tenant (an unauthenticated request is answered 401 with its body unread; Node discards it) and admission has let
 * the request in. Both content types pass the same checks, in this order:
 * 1. framing (`checkFraming`): no `Content-Encoding` but identity, no `Transfer-Encoding` but chunked, no charset but
 *    UTF-8; else 415 UNSUPPORTED_MEDIA_TYPE. Nothing is decoded that is not checked.
 * 2. bytes: JSON must be UTF-8 (a UTF-16 or UTF-32 body is 415, invalid UTF-8 is 400 INPUT_INVALID_UTF8), within
 *    `maxUploadBytes` (413, checked on the declared length before any byte is read).
 * 3. JSON text (the body, each JSON form field), before it is parsed (`scanJson`): at most MAX_JSON_DEPTH deep and
 *    MAX_JSON_ITEMS items (400 INPUT_INVALID), so no body within the size limit holds the event loop in JSON.parse
 *    (10 million numbers took 1.5 s, a million nested arrays 0.5 s); then JSON.parse (400 INPUT_INVALID).
 * 4. values (`checkFields`), on the JSON body and on the multipart fields alike: no `__proto__`, `constructor` or
 *    `prototype` key anywhere (400 INPUT_INVALID), no NUL in any string or key (415 INPUT_NOT_TEXT), no nesting
 *    deeper than MAX_JSON_DEPTH (400 INPUT_INVALID).
 */
export async function readBody(
  req: Request,
  res: Response,
  maxUploadBytes: number,
  json: { parse(bytes: Buffer): Promise<{ fields: Record<string, unknown>; textSha256?: string }> } = { parse: async (bytes) => ({ fields: parseJsonBody(bytes) }) },
): Promise<ParsedBody> {
  const { type, charset } = checkFraming(req);
  if (type === 'application/json') return { ...(await json.parse(await readRaw(req, maxUploadBytes))), file: null };
  if (type === 'multipart/form-data') {
    if (charset !== undefined) throw unsupported(`multipart/form-data takes no charset parameter (got ${charset}): its fields are UTF-8`);
    const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: maxUploadBytes, files: 1, fields: 16, fieldSize: 256 * 1024, parts: 20 } }).single('file');
    await new Promise<void>((resolve, reject) =>
      upload(req, res, (err: unknown) => {
        if (!err) return resolve();
        // Size limits keep their own codes (the error filter maps multer's LIMIT_*); anything else is a malformed body.
        const code = (err as { code?: string }).code;
        reject(typeof code === 'string' && code.startsWith('LIMIT_') ? err : new AppError('INPUT_INVALID', `malformed multipart body: ${(err as Error).message}`));
      }),
    );
    const entries: [string, unknown][] = [];
    for (const [k, v] of Object.entries((req.body ?? {}) as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new AppError('INPUT_INVALID', `form field ${k} must appear once`);
      entries.push([k, JSON_FIELDS.includes(k) ? parseJson(v, `form field ${k} must hold JSON`) : v]);
    }
    // fromEntries defines own properties, as JSON.parse does: a field named __proto__ is a key checkFields sees.
    const fields = checkFields(Object.fromEntries(entries));
    const f = req.file;
    return { fields, file: f ? { bytes: f.buffer, fileName: f.originalname, mimeType: f.mimetype } : null };
  }
  throw unsupported(`content type "${type || '(none)'}" is not accepted: send application/json or multipart/form-data`);
}

/**
 * The media type and charset of a request, once its encodings are known to be ones the API reads: a body the API does
 * not decode (gzip, deflate, br: body-parser used to inflate JSON and multer never did) or a transfer coding Node does
 * not remove (`Transfer-Encoding: gzip, chunked` leaves gzip bytes) is refused, not read as if it were plain.
 */
export function checkFraming(req: Pick<Request, 'headers'>): { type: string; charset: string | undefined } {
  const codings = (header: string | undefined) =>
    (header ?? '')
      .split(',')
      .map((c) => c.trim().toLowerCase())
      .filter((c) => c !== '');
  const contentCodings = codings(req.headers['content-encoding']).filter((c) => c !== 'identity');
  if (contentCodings.length > 0) throw unsupported(`Content-Encoding ${contentCodings.join(', ')} is not accepted: send the body uncompressed`);
  const transferCodings = codings(req.headers['transfer-encoding']).filter((c) => c !== 'chunked');
  if (transferCodings.length > 0) throw unsupported(`Transfer-Encoding ${transferCodings.join(', ')} is not accepted: only chunked`);
  const [type = '', ...params] = (req.headers['content-type'] ?? '').split(';');
  let charset: string | undefined;
  for (const p of params) {
    const eq = p.indexOf('=');
    if (eq > 0 && p.slice(0, eq).trim().toLowerCase() === 'charset') charset = p.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1').toLowerCase();
  }
  if (charset !== undefined && UTF8.has(charset)) charset = undefined;
  const mediaType = type.trim().toLowerCase();
  if (charset !== undefined && mediaType === 'application/json') throw unsupported(`charset ${charset} is not accepted: send UTF-8`);
  return { type: mediaType, charset };
}

/**
 * The JSON text of a body: UTF-8 (a UTF-8 byte-order mark is dropped). A UTF-16 or UTF-32 body is 415 whether or not it
 * starts with a byte-order mark: a JSON text starts with an ASCII character, so a NUL in its first two bytes can only
 * be one of those encodings (RFC 4627, section 3).
 */
function decodeJsonBytes(bytes: Buffer): string {
  const bom16 = bytes.length >= 2 && ((bytes[0] === 0xfe && bytes[1] === 0xff) || (bytes[0] === 0xff && bytes[1] === 0xfe));
  if (bom16 || (bytes.length >= 2 && (bytes[0] === 0 || bytes[1] === 0))) throw unsupported('the JSON body is UTF-16 or UTF-32: send UTF-8');
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new AppError('INPUT_INVALID_UTF8', 'the JSON body is not valid UTF-8');
  }
}

/**
 * Steps 2-4 of readBody for a JSON body already read: the one function that checks and parses it, in place or on a
 * thread (JsonBodyPool), so both give the same answers.
 */
export function parseJsonBody(bytes: Uint8Array): Record<string, unknown> {
  const body = parseJson(decodeJsonBytes(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)), 'the request body is not valid JSON');
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new AppError('INPUT_INVALID', 'the JSON body must be an object');
  return checkFields(body as Record<string, unknown>);
}

function parseJson(text: string, problem: string): unknown {
  scanJson(text);
  try {
    return JSON.parse(text);
  } catch {
    throw new AppError('INPUT_INVALID', problem);
  }
}

/**
 * Bounds a JSON text's nesting and its number of items before JSON.parse builds anything (readBody, step 3). One pass
 * over the structure; strings are skipped with indexOf, so the text of a document costs next to nothing. Malformed
 * text is left for JSON.parse to refuse.
 */
export function scanJson(text: string): void {
  let depth = 0;
  let items = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // To the closing quote: the next one not escaped by an odd run of backslashes.
      let j = i;
      for (;;) {
        j = text.indexOf('"', j + 1);
        if (j === -1) return;
        let backslashes = 0;
        while (text.charCodeAt(j - 1 - backslashes) === 0x5c) backslashes++;
        if (backslashes % 2 === 0) break;
      }
      i = j;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_JSON_DEPTH) throw new AppError('INPUT_INVALID', `the request nests deeper than ${MAX_JSON_DEPTH} levels`);
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (c === 0x2c && ++items > MAX_JSON_ITEMS) {
      throw new AppError('INPUT_INVALID', `the request holds more than ${MAX_JSON_ITEMS} JSON items`);
    }
  }
}

interface Visit {
  value: object;
  parent: Visit | null;
  key: string | number;
  depth: number;
}

/** Where a value sits, for a message: `metadata.list[1]`. */
function pathOf(v: Visit | null, key?: string | number): string {
  const parts: (string | number)[] = key === undefined ? [] : [key];
  for (let at = v; at?.parent; at = at.parent) parts.unshift(at.key);
  return parts.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('') || 'the top level';
}

/**
 * Checks every key and string of a request's values without recursion (any depth of nesting is safe to walk), and
 * returns them: see readBody, step 4. The one check for JSON bodies and multipart fields.
 */
export function checkFields<T extends Record<string, unknown>>(fields: T): T {
  const stack: Visit[] = [{ value: fields, parent: null, key: '', depth: 0 }];
  const visit = (child: unknown, parent: Visit, key: string | number) => {
    if (typeof child === 'string') {
      if (child.includes('\0')) throw new AppError('INPUT_NOT_TEXT', `${pathOf(parent, key)} holds a NUL character (U+0000): no request string may`);
    } else if (child !== null && typeof child === 'object') {
      if (parent.depth + 1 > MAX_JSON_DEPTH) throw new AppError('INPUT_INVALID', `the request nests deeper than ${MAX_JSON_DEPTH} levels`);
      stack.push({ value: child, parent, key, depth: parent.depth + 1 });
    }
  };
  while (stack.length > 0) {
    const at = stack.pop()!;
    const value = at.value;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) visit(value[i], at, i);
      continue;
    }
    for (const key of Object.keys(value)) {
      if (FORBIDDEN_KEYS.has(key)) throw new AppError('INPUT_INVALID', `the key "${key}" is not accepted (at ${pathOf(at)})`);
      if (key.includes('\0')) throw new AppError('INPUT_NOT_TEXT', `a key at ${pathOf(at)} holds a NUL character (U+0000)`);
      visit((value as Record<string, unknown>)[key], at, key);
    }
  }
  return fields;
}

/**
 * Reads a body of at most `limit` bytes. A declared length over the limit is refused before any byte is read; a
 * chunked body is refused once it passes the limit, and what follows is discarded unread (not buffered).
 */
function readRaw(req: Request, limit: number): Promise<Buffer> {
  const tooLarge = () => new AppError('INPUT_TOO_LARGE', `the request body is over the size limit of ${limit} bytes`);
  if (Number(req.headers['content-length']) > limit) return Promise.reject(tooLarge());
  // With a declared length the body is copied into one buffer of its own as it arrives: no single large copy at the
  // end on the event loop, and a buffer a parser thread can take over without copying (JsonBodyPool).
  const declared = Number(req.headers['content-length']);
  // allocUnsafeSlow: memory of its own (transferable) and not zero-filled first (every byte is written below).
  const whole = Number.isSafeInteger(declared) && declared > 0 ? Buffer.allocUnsafeSlow(declared) : null;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      if (whole && size + chunk.length <= whole.length) {
        chunk.copy(whole, size);
        size += chunk.length;
        return;
      }
      size += chunk.length;
      if (size <= limit && !whole) return void chunks.push(chunk);
      cleanup();
      req.resume();
      reject(tooLarge());
    };
    const onEnd = () => {
      cleanup();
      if (whole && size !== whole.length) return reject(new AppError('INPUT_INVALID', 'the request body is shorter than its Content-Length'));
      resolve(whole ?? Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new AppError('INPUT_INVALID', `the request body could not be read: ${err.message}`));
    };
    const onClose = () => {
      cleanup();
      reject(new AppError('INPUT_INVALID', 'the request body ended before its end'));
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}

function unsupported(message: string): AppError {
  return new AppError('UNSUPPORTED_MEDIA_TYPE', message);
}

/** Parses with a schema; every problem is named in one INPUT_INVALID. */
export function parseWith<S extends z.ZodType>(schema: S, value: unknown, what: string): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.join('.') || what}: ${i.message}`).join('; ');
    throw new AppError('INPUT_INVALID', `invalid ${what}: ${problems}`, { issues: r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })) });
  }
  return r.data;
}
