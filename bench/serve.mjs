// What the bench scripts share about the server they start (`e2llm serve` or its roles): waiting until it is ready,
// reading a process's resident memory, and removing the run's Redis keys afterwards.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Resident memory of a process, in MiB; 0 once it has exited. */
export function rssMiB(pid) {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/**
 * Polls GET /readyz every 100 ms until it answers 200; returns the milliseconds it took. Throws past `limitMs`, or at
 * once when `gone()` says why the server can no longer become ready (it exited); `detail()` adds to the error.
 */
export async function untilReady(base, { limitMs = 120_000, gone = () => undefined, detail = () => '' } = {}) {
  const t0 = Date.now();
  for (;;) {
    const why = gone();
    if (why) throw new Error(`the server exited (${why}): ${detail()}`);
    try {
      if ((await fetch(`${base}/readyz`)).ok) return Date.now() - t0;
    } catch {
      /* not listening yet */
    }
    if (Date.now() - t0 > limitMs) throw new Error(`the server did not become ready: ${detail()}`);
    await sleep(100);
  }
}

/** Deletes every Redis key under `prefix` with redis-cli (best effort: a bench's leftovers, not its result). */
export function dropRedisKeys(prefix) {
  try {
    const keys = execFileSync('redis-cli', ['--scan', '--pattern', `${prefix}*`], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) execFileSync('redis-cli', ['del', ...keys.slice(i, i + 500)]);
  } catch {
    /* best effort */
  }
}
