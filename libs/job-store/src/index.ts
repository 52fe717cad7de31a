// The job records (Redis hashes and their Lua transitions), the queue edge (BullMQ flows, typed handlers, the worker
// process's start and drain) and observability (Prometheus metrics, OpenTelemetry spans), one folder each.
export * from './records/job-store.js';
export * from './records/batch-store.js';
export * from './queue/pipeline.js';
export * from './queue/worker-host.js';
export * from './queue/worker-process.js';
export * from './observability/metrics.js';
export * from './observability/tracing.js';
