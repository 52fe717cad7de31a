import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { isMainThread } from 'node:worker_threads';

/** Nice value of the API's background threads: above the event loop's 0, so it is scheduled first. */
const BACKGROUND_NICE = 10;

/**
 * Lowers the calling worker thread's scheduling priority (Linux: setpriority on the thread's own id), so that on a
 * machine with few cores the threads that parse bodies, cut documents and extract uploads yield to the event loop
 * that answers every request and /healthz, instead of taking turns with it. Does nothing on the main thread or where
 * the thread id cannot be read; never throws.
 */
export function runInBackground(): void {
  if (isMainThread) return;
  try {
    // /proc/thread-self -> "<pid>/task/<tid>"
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, BACKGROUND_NICE);
  } catch {
    // Not Linux, or not allowed: the thread keeps the default priority.
  }
}
