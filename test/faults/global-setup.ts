import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The child processes run `apps/cli/bin/e2llm.js`, which loads the build output: build it (incremental) first. */
export default function setup(): void {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-b'], { cwd: root, stdio: 'inherit' });
}
