import * as ort from 'onnxruntime-node';
import { AppError, ENCODER_BATCH_COST_TOKENS, TENSORS, planPaddedBatches, type ModelManifest } from '@lib/shared';
import { expectDims, int64Tensor, openSession, run, type SessionSettings } from './sessions.js';
import type { TextTokenizer } from './tokenizer.js';

export interface BatchLimits {
  /** Batch size x longest sequence (padded tokens) may not exceed this, as TEI's max-batch-tokens. */
  maxBatchTokens: number;
  maxBatchSize: number;
}

/** One chunk to encode: its text, and the ids the package's encoder tokenizer gives it (CLS included). */
export interface ChunkToEncode {
  text: string;
  ids: readonly number[];
}

/**
 * What encodes chunks, whichever runs it: the in-process ONNX `ChunkEncoder` (which reads the ids) or
 * text-embeddings-inference (`TeiEncoder`, which reads the texts and tokenizes them itself).
 */
export interface EncoderEngine {
  /** One vector per chunk, [chunks.length, width], in the input order. */
  encodeChunks(chunks: readonly ChunkToEncode[]): Promise<Float32Array>;
  release(): Promise<void>;
}

/** The text encoder: chunk ids in, one vector per chunk out. */
export class ChunkEncoder implements EncoderEngine {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: TextTokenizer,
    private readonly spec: ModelManifest['encoder'],
    private readonly limits: BatchLimits,
  ) {}

  static async open(path: string, tokenizer: TextTokenizer, spec: ModelManifest['encoder'], limits: BatchLimits, settings: SessionSettings): Promise<ChunkEncoder> {
    const session = await openSession(path, 'encoder', TENSORS.encoder, settings);
    const encoder = new ChunkEncoder(session, tokenizer, spec, limits);
    // Warm-up doubles as the shape check: a session reports healthy only after a good run.
    const out = await encoder.runBatch([encoder.tokenize('warm up')]);
    if (out.length !== spec.width) throw new AppError('MODEL_MISMATCH', 'encoder warm-up returned the wrong width');
    return encoder;
  }

  /** The ids the encoder sees for one chunk: CLS (when the model has one) then the text's tokens. */
  tokenize(text: string): number[] {
    const ids = this.tokenizer.encode(text);
    return this.spec.clsTokenId === null ? ids : [this.spec.clsTokenId, ...ids];
  }

  /**
   * Encodes chunks (as ids from tokenize) in padded-token-budget batches; returns [n, width] in the input order.
   */
  async encode(chunkIds: readonly number[][], onBatch?: (done: number) => void): Promise<Float32Array> {
    const width = this.spec.width;
    for (const ids of chunkIds) {
      if (ids.length > this.spec.maxTokens) {
        throw new AppError('INPUT_INVALID', `a chunk has ${ids.length} encoder tokens; the encoder accepts ${this.spec.maxTokens}`);
      }
    }
    const out = new Float32Array(chunkIds.length * width);
    let done = 0;
    // The one batch planner (libs/shared batch-plan.ts), as the encoder worker plans its children.
    for (const batch of planPaddedBatches(chunkIds.map((c) => c.length), { ...this.limits, batchCostTokens: ENCODER_BATCH_COST_TOKENS })) {
      const vectors = await this.runBatch(batch.map((i) => chunkIds[i]!));
      batch.forEach((i, row) => out.set(vectors.subarray(row * width, (row + 1) * width), i * width));
      done += batch.length;
      onBatch?.(done);
    }
    return out;
  }

  encodeChunks(chunks: readonly ChunkToEncode[]): Promise<Float32Array> {
    return this.encode(chunks.map((c) => [...c.ids]));
  }

  /** One padded batch through encoder.onnx: [b, width]. */
  async runBatch(batch: readonly number[][]): Promise<Float32Array> {
    const longest = Math.max(...batch.map((ids) => ids.length));
    const ids = new Array<number>(batch.length * longest).fill(this.spec.padTokenId);
    const mask = new Array<number>(batch.length * longest).fill(0);
    batch.forEach((seq, r) => {
      for (let t = 0; t < seq.length; t++) {
        ids[r * longest + t] = seq[t]!;
        mask[r * longest + t] = 1;
      }
    });
    const result = await run(this.session, 'encoder', {
      input_ids: int64Tensor(ids, [batch.length, longest]),
      attention_mask: int64Tensor(mask, [batch.length, longest]),
    });
    return expectDims('encoder', 'chunk_embeddings', result.chunk_embeddings, [batch.length, this.spec.width]).data as Float32Array;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/** The adapter: chunk vectors [n, encoder width] to soft tokens [n, decoder hidden]. */
export class SoftTokenAdapter {
  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly spec: ModelManifest['adapter'],
  ) {}

  static async open(path: string, spec: ModelManifest['adapter'], settings: SessionSettings): Promise<SoftTokenAdapter> {
    const adapter = new SoftTokenAdapter(await openSession(path, 'adapter', TENSORS.adapter, settings), spec);
    await adapter.run(new Float32Array(spec.inputWidth), 1);
    return adapter;
  }

  /** Rows at a time, so a very long document does not make one huge tensor. */
  async run(chunkEmbeddings: Float32Array, n: number, rowsPerRun = 4096): Promise<Float32Array> {
    const { inputWidth, outputWidth } = this.spec;
    if (chunkEmbeddings.length !== n * inputWidth) throw new AppError('INTERNAL', 'adapter input size mismatch (this is a bug)');
    const out = new Float32Array(n * outputWidth);
    for (let start = 0; start < n; start += rowsPerRun) {
      const rows = Math.min(rowsPerRun, n - start);
      const input = new ort.Tensor('float32', chunkEmbeddings.subarray(start * inputWidth, (start + rows) * inputWidth), [rows, inputWidth]);
      const result = await run(this.session, 'adapter', { chunk_embeddings: input });
      out.set(expectDims('adapter', 'soft_tokens', result.soft_tokens, [rows, outputWidth]).data as Float32Array, start * outputWidth);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
