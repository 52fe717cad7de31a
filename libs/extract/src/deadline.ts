import { AppError } from '@lib/shared';

/** Lets long work check, between steps, whether its time is up. */
export interface Deadline {
  /** Throws the timeout error once the time is up. */
  check(): void;
}

/**
 * Runs `work` with a time limit. When the limit passes, the returned promise rejects with DOCUMENT_UNREADABLE at once
 * and `work` is told through `deadline.check()`; a parser that never yields cannot be interrupted (JavaScript is
 * single-threaded), so the timer only fires between its asynchronous steps. `onTimeout` releases what the work holds.
 */
export async function withDeadline<T>(
  timeoutMs: number,
  what: string,
  work: (deadline: Deadline) => Promise<T>,
  onTimeout?: () => void,
): Promise<T> {
  let expired = false;
  const timeoutError = () =>
    new AppError('DOCUMENT_UNREADABLE', `${what} took longer than ${timeoutMs} ms`, { reason: 'timeout', timeoutMs });
  const deadline: Deadline = {
    check() {
      if (expired) throw timeoutError();
    },
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expired = true;
      onTimeout?.();
      reject(timeoutError());
    }, timeoutMs);
  });
  const running = work(deadline);
  // After a timeout nobody awaits `running`; its eventual rejection must not surface as an unhandled one.
  running.catch(() => undefined);
  try {
    return await Promise.race([running, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
