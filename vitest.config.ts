import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run against the sources, so `npm test` needs no build of the libraries first.
    alias: [
      { find: /^@lib\/(blob-store|extract|job-store)\/testing$/, replacement: src('./libs/$1/src/testing/index.ts') },
      { find: /^@lib\/model-runtime\/planning$/, replacement: src('./libs/model-runtime/src/planning-pool.ts') },
      { find: /^@lib\/model-runtime\/package$/, replacement: src('./libs/model-runtime/src/model-package.ts') },
      { find: /^@lib\/([a-z-]+)$/, replacement: src('./libs/$1/src/index.ts') },
      { find: /^@app\/([a-z-]+)$/, replacement: src('./apps/$1/src/main.ts') },
    ],
  },
  test: {
    include: ['{libs,apps}/*/{src,test}/**/*.{spec,model-spec,int-spec}.ts', 'test/**/*.{spec,e2e-spec}.ts', 'infra/**/*.spec.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // CI reads the counts from the JSON report (.ci/run prints the closing "N passed, N failed" line).
    reporters: process.env.CI ? ['default', ['json', { outputFile: '.tmp/reports/vitest.json' }]] : ['default'],
  },
});
