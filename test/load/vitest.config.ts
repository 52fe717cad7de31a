import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

/** `npm run test:load`: the load test (prints a report; bounded in submissions and time). Builds first, as the faults suite. */
export default defineConfig({
  resolve: base.resolve,
  test: {
    include: ['test/load/*.load-spec.ts'],
    globalSetup: ['test/faults/global-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 120_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
