import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { AppError, type ErrorCode, type Task } from '@lib/shared';

export { readManifest } from './planner.js';

export interface PlanRequest {
  modelDir: string;
  /** The document to cut; absent when only the prompt is measured. */
  text?: string;
  task?: Task;
  /** Stop cutting past this many chunks. */
  limit?: number;
}

export type PlanResponse =
  | { ok: true; chunks: [start: number, end: number, tokens: number][]; promptTokens: number; tokenizer: string; ids?: Uint32Array }
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
 * 4M-character document takes seconds. The queue is bounded by what it holds, not only by count: many small
 * requests (a question, a short text: milliseconds each) wait their turn, while the characters of documents waiting
 * stay under `maxQueuedChars`; past either bound the caller is told to come back (429 OVERLOADED with Retry-After)
 * instead of piling up documents in memory.
 */
export class PlanningPool {
  private readonly pool: Piscina<PlanRequest, PlanResponse>;
  private readonly maxQueuedChars: number;
  /** Characters of the texts handed to the pool and not yet answered. */
  private queuedChars = 0;

  constructor(
    private readonly modelDir: string,
    options: { threads?: number; maxQueue?: number; maxQueuedChars?: number } = {},
  ) {
    const threads = options.threads ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    this.pool = new Piscina({
      // The built thread, from the sources too (tests run them): each is one folder below the package.
      filename: new URL('../dist/plan-worker.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      maxQueue: options.maxQueue ?? threads * 256,
      // A thread waits for work; it is not recycled between tasks (the tokenizers stay loaded).
      idleTimeout: 60_000,
    });
    this.maxQueuedChars = options.maxQueuedChars ?? 32_000_000;
  }

  /**
   * Cuts a document (stopping past `limit` chunks) and measures the task's prompt, in one trip to a thread; with the
   * chunks' encoder ids (each chunk's `tokens` of them, one after another) and the tokenizer that made them.
   */
  async plan(text: string, task?: Task, limit?: number): Promise<{ chunks: PlannedChunk[]; promptTokens: number; ids: Uint32Array; tokenizer: string }> {
    const res = await this.run({ modelDir: this.modelDir, text, task, limit });
    return { chunks: res.chunks.map(([start, end, tokens], index) => ({ index, start, end, tokens })), promptTokens: res.promptTokens, ids: res.ids ?? new Uint32Array(0), tokenizer: res.tokenizer };
  }

  /** The prompt tokens of a task (template, question or instruction) with the decoder's tokenizer. */
  async promptTokens(task: Task): Promise<number> {
    return (await this.run({ modelDir: this.modelDir, task })).promptTokens;
  }

  async close(): Promise<void> {
    await this.pool.close({ force: true });
  }

  private async run(req: PlanRequest): Promise<Extract<PlanResponse, { ok: true }>> {
    const chars = req.text?.length ?? 0;
    // One text is always let in when nothing waits, whatever its size (it is within MAX_DOCUMENT_CHARS).
    if (this.pool.queueSize >= this.pool.options.maxQueue || (this.queuedChars > 0 && this.queuedChars + chars > this.maxQueuedChars)) {
      throw new AppError('OVERLOADED', 'every document planner is busy; retry later', { retryAfterSeconds: 2 });
    }
    this.queuedChars += chars;
    let res: PlanResponse;
    try {
      res = await this.pool.run(req);
    } finally {
      this.queuedChars -= chars;
    }
    if (!res.ok) throw new AppError(res.error.code, res.error.message, res.error.details);
    return res;
  }
}
