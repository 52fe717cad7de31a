export * from './client.js';
export type { BatchItem, BatchListPage, BatchResultLine, BatchWebhookBody, PublicBatch, Deleted, DocumentListPage, Evidence, GenerationParams, JobListPage, JobProgress, JobStatus, JobStreamEvent, Metadata, PublicDocument, PublicJob, Task, WebhookBody, WebhookSpec } from '@lib/shared';
