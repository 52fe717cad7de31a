import type { DocumentRecord, JobRecord } from './job-record.js';

/** A job as its owner sees it over HTTP and in webhooks: no tenant, no internal storage keys. */
export function toPublicJob(job: JobRecord) {
  const { tenant: _tenant, sourceKey: _sourceKey, chunkMs: _chunkMs, ...visible } = job;
  return { object: 'job' as const, ...visible };
}
export type PublicJob = ReturnType<typeof toPublicJob>;

export function toPublicDocument(doc: DocumentRecord) {
  const { tenant: _tenant, sourceKey: _sourceKey, ...visible } = doc;
  return { object: 'document' as const, ...visible };
}
export type PublicDocument = ReturnType<typeof toPublicDocument>;
