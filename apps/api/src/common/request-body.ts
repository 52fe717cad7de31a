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
}

const JSON_FIELDS = ['task', 'generation', 'webhook', 'metadata'];

/**
 * The body of a create request: application/json, or multipart/form-data with one `file` and JSON-valued fields
 * (`task`, `generation`, `webhook`, `metadata`). Any other content type is 415.
 */
export async function readBody(req: Request, res: Response, maxUploadBytes: number): Promise<ParsedBody> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/json') {
    if (req.body === null || typeof req.body !== 'object' || Array.isArray(req.body)) throw new AppError('INPUT_INVALID', 'the JSON body must be an object');
    return { fields: req.body as Record<string, unknown>, file: null };
  }
  if (type === 'multipart/form-data') {
    const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: maxUploadBytes, files: 1, fields: 16, fieldSize: 256 * 1024, parts: 20 } }).single('file');
    await new Promise<void>((resolve, reject) =>
      upload(req, res, (err: unknown) => {
        if (!err) return resolve();
        // Size limits keep their own codes (the error filter maps multer's LIMIT_*); anything else is a malformed body.
        const code = (err as { code?: string }).code;
        reject(typeof code === 'string' && code.startsWith('LIMIT_') ? err : new AppError('INPUT_INVALID', `malformed multipart body: ${(err as Error).message}`));
      }),
    );
    const fields: Record<string, unknown> = {};
    for (const [k, v] of Object.entries((req.body ?? {}) as Record<string, unknown>)) {
      if (typeof v !== 'string') throw new AppError('INPUT_INVALID', `form field ${k} must appear once`);
      if (JSON_FIELDS.includes(k)) {
        try {
          fields[k] = JSON.parse(v);
        } catch {
          throw new AppError('INPUT_INVALID', `form field ${k} must hold JSON`);
        }
      } else fields[k] = v;
    }
    const f = req.file;
    return { fields, file: f ? { bytes: f.buffer, fileName: f.originalname, mimeType: f.mimetype } : null };
  }
  throw new AppError('UNSUPPORTED_MEDIA_TYPE', `content type "${type || '(none)'}" is not accepted: send application/json or multipart/form-data`);
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
