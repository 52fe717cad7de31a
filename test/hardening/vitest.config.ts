import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

/**
 * `npm run test:hardening`: what only `e2llm serve` as a real process, alone on the machine, can show: SIGTERM drains
 * the job in hand, /healthz stays prompt under oversized submissions, extraction memory stays within its budget.
 * Latency and memory are measured, so files run one at a time and nothing else shares the cores (`.ci/run` runs it
 * after the other suites). The process runs from the build output (`npm ci` builds it).
 */
export default defineConfig({
  resolve: base.resolve,
  test: {
    include: ['test/hardening/*.hardening-spec.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default'],
  },
});
