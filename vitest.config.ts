import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources, so `npm test` needs no build of the libraries first.
    alias: {
      '@lib/shared': src('./libs/shared/src/index.ts'),
      '@lib/model-runtime': src('./libs/model-runtime/src/index.ts'),
    },
  },
  test: {
    include: ['{libs,apps}/*/{src,test}/**/*.{spec,model-spec,int-spec}.ts', 'test/**/*.{spec,e2e-spec}.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // CI reads the counts from the JSON report (.ci/run prints the closing "N passed, N failed" line).
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.tmp/reports/vitest.json' }]] : ['default'],
  },
});
