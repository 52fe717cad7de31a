export * from './job-store.js';
export * from './pipeline.js';
export * from './worker-host.js';
export * from './metrics.js';
export * from './tracing.js';
export * from './worker-process.js';
