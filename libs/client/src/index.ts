export * from './client.js';
export type { Evidence, GenerationParams, JobListPage, JobProgress, JobStatus, JobStreamEvent, Metadata, PublicDocument, PublicJob, Task, WebhookBody, WebhookSpec } from '@lib/shared';
