import { createHash } from 'node:crypto';
import { AppError } from './errors.js';

/**
 * Every blob-store key comes from these functions, never from strings built inline. Ids are server-generated; each
 * is checked against a strict pattern so nothing a user sends can become a path segment.
 */
const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

function safe(kind: string, id: string): string {
  if (!SAFE_ID.test(id)) throw new AppError('INPUT_INVALID', `invalid ${kind}: must match ${SAFE_ID.source}`);
  return id;
}

/** The stored source document of a job or document. */
export function sourceKey(jobId: string): string {
  return `sources/${safe('job id', jobId)}`;
}

/** The hash that content-addresses one chunk's soft prompt: the same encoder and text give the same key. */
export function chunkHash(encoderId: string, chunkText: string): string {
  return createHash('sha256').update(encoderId).update('\0').update(chunkText, 'utf8').digest('hex');
}

/**
 * One chunk's soft prompt. Namespaced per tenant: a cache shared across tenants would reveal, by what comes back
 * cached, that another tenant already submitted the same text.
 */
export function softPromptKey(tenant: string, encoderId: string, hash: string): string {
  if (!/^[0-9a-f]{64}$/.test(hash)) throw new AppError('INPUT_INVALID', 'invalid chunk hash');
  return `soft-prompts/${safe('tenant', tenant)}/${safe('encoder id', encoderId)}/${hash}`;
}

/** The start of every soft-prompt key of a tenant: what the tenant purge lists, and what reference counts are kept under. */
export function softPromptTenantPrefix(tenant: string): string {
  return `soft-prompts/${safe('tenant', tenant)}/`;
}

/** The chunk hash a soft prompt's key is named by (what its blob must carry). */
export function softPromptKeyHash(key: string): string {
  const hash = key.slice(key.lastIndexOf('/') + 1);
  if (!key.startsWith('soft-prompts/') || !/^[0-9a-f]{64}$/.test(hash)) throw new AppError('INTERNAL', `not a soft-prompt key: ${key.slice(0, 80)}`);
  return hash;
}

/** A job's result document. */
export function resultKey(jobId: string): string {
  return `results/${safe('job id', jobId)}.json`;
}

/** A stored document's chunk references (DocumentChunks), kept beside its source. */
export function documentChunksKey(documentId: string): string {
  return `chunk-refs/${safe('document id', documentId)}.json`;
}

/** The encoder ids of a job's or document's chunks, as the API measured them (chunk-ids.ts); kept until it is encoded. */
export function chunkIdsKey(ownerId: string): string {
  return `chunk-ids/${safe('owner id', ownerId)}`;
}

/**
 * The first segment of every key above: the folders the local blob store keeps under DATA_DIR. Its readiness probe
 * checks each one (a file where one of these folders should be, or one that cannot be written, is a broken store).
 */
export const STORAGE_NAMESPACES = ['sources', 'soft-prompts', 'results', 'chunk-refs', 'chunk-ids'] as const;
