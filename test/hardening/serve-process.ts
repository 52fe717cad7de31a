import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';

const BIN = new URL('../../apps/cli/bin/e2llm.js', import.meta.url).pathname;

export interface ServeProcess {
  url: string;
  proc: ChildProcess;
  /** Redis key prefix of this process's queues and records. */
  prefix: string;
  /** Its stdout (pino JSON lines) and stderr, as they came. */
  lines: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Kills it if still running and removes its Redis keys and data folder. */
  cleanup(): Promise<void>;
}

/**
 * `e2llm serve` (what `npm start` runs: API and both workers in one process) as a separate process on a random
 * port, with a Redis prefix and data folder of its own: for what only a real process shows (signals, event-loop
 * latency measured from outside, memory). It logs at info level: the readiness line ("listening on") is read from it.
 */
export function startServe(env: Record<string, string> = {}): Promise<ServeProcess> {
  const prefix = `e2llm-proc-${randomBytes(6).toString('hex')}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'e2llm-proc-'));
  const proc = spawn(process.execPath, [BIN, 'serve'], {
    env: { ...process.env, PORT: '0', REDIS_PREFIX: prefix, DATA_DIR: dataDir, LOG_LEVEL: 'info', BLOB_STORE: 'local', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
  );
  const cleanup = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
    const redis = new Redis('redis://127.0.0.1:6379');
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
    rmSync(dataDir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      lines.push(line);
      const m = /listening on (http:\/\/\S+)"/.exec(line);
      if (m) resolve({ url: m[1]!, proc, prefix, lines, exited, cleanup });
    });
    proc.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
    void exited.then(() => reject(new Error(`serve exited before listening:\n${lines.join('\n')}`)));
  });
}
