import { main } from '../apps/cli/src/main.js';

/** A document the CLI specs submit: a few sentences repeated past one chunk. */
export const CLI_DOCUMENT = 'The lighthouse on Gull Rock was kept by Ada Lindqvist for forty years. She lit the lamp every night. '.repeat(12);

/** Runs the CLI in-process with captured output, as the installed bin would run it. */
export async function runCli(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await main(argv, { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env });
  return { code, stdout, stderr };
}
