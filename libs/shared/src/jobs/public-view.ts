import type { BatchRecord, DocumentRecord, JobRecord } from './job-record.js';

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

/** A batch as its owner sees it: no tenant; counts with the items still pending. */
export function toPublicBatch(batch: BatchRecord) {
  const { tenant: _tenant, total, ended, ...visible } = batch;
  const pending = total - ended.succeeded - ended.failed - ended.cancelled - ended.expired;
  return { object: 'batch' as const, ...visible, counts: { total, pending, ...ended } };
}
