import { defineConfig } from 'vitest/config';
import base from '../../vitest.config.js';

/**
 * `npm run test:faults`: the fault-injection suite. The roles run as child processes from the build output, so the
 * global setup runs `tsc -b` first. Files run one at a time (they share the machine's two cores with the roles).
 */
export default defineConfig({
  resolve: base.resolve,
  test: {
    include: ['test/faults/*.faults-spec.ts'],
    globalSetup: ['test/faults/global-setup.ts'],
    testTimeout: 90_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default'],
  },
});
