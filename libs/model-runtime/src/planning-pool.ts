import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { AppError, type ErrorCode, type Task } from '@lib/shared';

export interface PlanRequest {
  modelDir: string;
  /** The document to cut; absent when only the prompt is measured. */
  text?: string;
  task?: Task;
  /** Stop cutting past this many chunks. */
  limit?: number;
}

export type PlanResponse =
  | { ok: true; chunks: [start: number, end: number, tokens: number][]; promptTokens: number }
  | { ok: false; error: { code: ErrorCode; message: string; details?: Record<string, unknown> } };

/** A planned chunk: its place, its UTF-16 span in the text and its encoder tokens (CLS included). */
export interface PlannedChunk {
  index: number;
  start: number;
  end: number;
  tokens: number;
}

/**
 * DocumentPlanner on worker threads, for a server whose event loop must stay free: cutting and tokenizing a
 * 4M-character document takes seconds. A bounded queue: when every thread is busy and the queue is full, the
 * caller is told to come back (429 OVERLOADED with Retry-After) instead of piling up documents in memory.
 */
export class PlanningPool {
  private readonly pool: Piscina<PlanRequest, PlanResponse>;

  constructor(
    private readonly modelDir: string,
    options: { threads?: number; maxQueue?: number } = {},
  ) {
    const threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    this.pool = new Piscina({
      // The built thread, from the sources too (tests run them): each is one folder below the package.
      filename: new URL('../dist/plan-worker.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      maxQueue: options.maxQueue ?? threads * 8,
      // A thread waits for work; it is not recycled between tasks (the tokenizers stay loaded).
      idleTimeout: 60_000,
    });
  }

  /** Cuts a document (stopping past `limit` chunks) and measures the task's prompt, in one trip to a thread. */
  async plan(text: string, task?: Task, limit?: number): Promise<{ chunks: PlannedChunk[]; promptTokens: number }> {
    const res = await this.run({ modelDir: this.modelDir, text, task, limit });
    return { chunks: res.chunks.map(([start, end, tokens], index) => ({ index, start, end, tokens })), promptTokens: res.promptTokens };
  }

  /** The prompt tokens of a task (template, question or instruction) with the decoder's tokenizer. */
  async promptTokens(task: Task): Promise<number> {
    return (await this.run({ modelDir: this.modelDir, task })).promptTokens;
  }

  async close(): Promise<void> {
    await this.pool.close({ force: true });
  }

  private async run(req: PlanRequest): Promise<Extract<PlanResponse, { ok: true }>> {
    if (this.pool.queueSize >= this.pool.options.maxQueue) {
      throw new AppError('OVERLOADED', 'every document planner is busy; retry later', { retryAfterSeconds: 2 });
    }
    const res = await this.pool.run(req);
    if (!res.ok) throw new AppError(res.error.code, res.error.message, res.error.details);
    return res;
  }
}
