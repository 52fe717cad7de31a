export * from './client.js';
export type { GenerationParams, JobProgress, JobStatus, Metadata, PublicDocument, PublicJob, Task, WebhookSpec } from '@lib/shared';
