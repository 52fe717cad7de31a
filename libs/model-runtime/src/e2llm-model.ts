import {
  AppError,
  chunkText,
  type Chunk,
  type Config,
  type GenerationParams,
  type Task,
  type Timings,
  type Usage,
  type FinishReason,
} from '@lib/shared';
import { Decoder, type GenerationHooks } from './decoder.js';
import { ChunkEncoder, SoftTokenAdapter } from './encoder.js';
import { loadModelPackage, type ModelPackage } from './model-package.js';
import { promptParts } from './prompt.js';
import { TextTokenizer } from './tokenizer.js';

export type RuntimeSettings = Pick<
  Config,
  'modelPath' | 'executionProviders' | 'intraOpThreads' | 'graphOptimization' | 'encoderMaxBatchTokens' | 'encoderMaxBatchSize'
>;

/** A chunk with the encoder ids it was measured with, so it is tokenized once. */
export interface EncodableChunk extends Chunk {
  ids: number[];
}

export interface AskResult {
  answer: string;
  finishReason: FinishReason;
  usage: Usage;
  timings: Timings;
}

/**
 * The whole E2LLM model in-process: chunker, encoder, adapter and decoder of one package. Used by the CLI, by the
 * workers (each through the stage it runs) and by the evaluation harness. It knows nothing of queues or HTTP.
 */
export class E2llmModel {
  private constructor(
    readonly pkg: ModelPackage,
    private readonly parts: { encoder?: ChunkEncoder; adapter?: SoftTokenAdapter; decoder?: Decoder },
  ) {}

  /**
   * Loads and warms up the package's sessions. An encoder worker loads only the encoder and a decoder worker only
   * the adapter and decoder, so neither holds the other's weights.
   */
  static async load(settings: RuntimeSettings, stages: { encoder?: boolean; decoder?: boolean } = { encoder: true, decoder: true }): Promise<E2llmModel> {
    const pkg = await loadModelPackage(settings.modelPath);
    const m = pkg.manifest;
    const encTok = await TextTokenizer.load(pkg.files.encoderTokenizer);
    const decTok = pkg.files.decoderTokenizer === pkg.files.encoderTokenizer ? encTok : await TextTokenizer.load(pkg.files.decoderTokenizer);
    const limits = { maxBatchTokens: settings.encoderMaxBatchTokens, maxBatchSize: settings.encoderMaxBatchSize };
    const parts: { encoder?: ChunkEncoder; adapter?: SoftTokenAdapter; decoder?: Decoder } = {};
    if (stages.encoder) parts.encoder = await ChunkEncoder.open(pkg.files.encoder, encTok, m.encoder, limits, settings);
    if (stages.decoder) {
      parts.adapter = await SoftTokenAdapter.open(pkg.files.adapter, m.adapter, settings);
      parts.decoder = await Decoder.open(pkg.files.decoder, pkg.files.embeddings, decTok, m.decoder, settings);
    }
    return new E2llmModel(pkg, parts);
  }

  get encoder(): ChunkEncoder {
    return this.parts.encoder ?? unloaded('encoder');
  }

  get adapter(): SoftTokenAdapter {
    return this.parts.adapter ?? unloaded('adapter');
  }

  get decoder(): Decoder {
    return this.parts.decoder ?? unloaded('decoder');
  }

  get encoderId(): string {
    return this.pkg.encoderId;
  }

  /** Chunks as the model was trained: its chunk size and overlap, and never more tokens than the encoder takes. */
  chunk(text: string): EncodableChunk[] {
    const { chunkChars, overlapChars } = this.pkg.manifest.prompt.chunking;
    const ids = new Map<string, number[]>();
    const countTokens = (t: string) => {
      const tokens = this.encoder.tokenize(t);
      ids.set(t, tokens);
      return tokens.length;
    };
    const chunks = chunkText(text, { chunkChars, overlapChars, maxTokens: this.pkg.manifest.encoder.maxTokens, countTokens });
    return chunks.map((c) => ({ ...c, ids: ids.get(c.text) ?? this.encoder.tokenize(c.text) }));
  }

  /** Prompt ids before and after the soft tokens. */
  promptIds(task: Task): { prefixIds: number[]; suffixIds: number[] } {
    const { prefix, suffix } = promptParts(this.pkg.manifest.prompt, task);
    const bos = this.pkg.manifest.decoder.bosTokenId;
    const tok = this.decoder.tokenizer;
    return { prefixIds: [...(bos === null ? [] : [bos]), ...tok.encode(prefix)], suffixIds: tok.encode(suffix) };
  }

  /** Refuses, before any encoding, a document whose soft tokens and prompt cannot fit the decoder window. */
  checkBudget(chunks: number, prompt: { prefixIds: number[]; suffixIds: number[] }, maxNewTokens: number): void {
    const need = prompt.prefixIds.length + chunks + prompt.suffixIds.length + maxNewTokens;
    if (need > this.decoder.window) {
      throw new AppError(
        'CONTEXT_TOO_LONG',
        `the document needs ${chunks} soft tokens; with the prompt (${prompt.prefixIds.length + prompt.suffixIds.length} tokens) and ${maxNewTokens} new tokens that is ${need} positions, over the decoder window of ${this.decoder.window}`,
        { chunks, need, window: this.decoder.window },
      );
    }
  }

  /** Every stage in-process: what `e2llm ask` runs. */
  async ask(text: string, task: Task, params: GenerationParams, hooks: GenerationHooks = {}): Promise<AskResult> {
    const t0 = performance.now();
    const chunks = this.chunk(text);
    const chunkMs = performance.now() - t0;
    const prompt = this.promptIds(task);
    this.checkBudget(chunks.length, prompt, params.maxNewTokens);

    const t1 = performance.now();
    const embeddings = await this.encoder.encode(chunks.map((c) => c.ids));
    const encodeMs = performance.now() - t1;
    const t2 = performance.now();
    const softTokens = await this.adapter.run(embeddings, chunks.length);
    const adapterMs = performance.now() - t2;

    const gen = await this.decoder.generate({ ...prompt, softTokens }, params, hooks);
    return {
      answer: gen.text,
      finishReason: gen.finishReason,
      usage: {
        chars: text.length,
        chunks: chunks.length,
        encoderTokens: chunks.reduce((a, c) => a + c.ids.length, 0),
        softTokens: chunks.length,
        promptTokens: prompt.prefixIds.length + prompt.suffixIds.length,
        generatedTokens: gen.tokens.length,
      },
      timings: { chunkMs, encodeMs, adapterMs, prefillMs: gen.prefillMs, decodeMs: gen.decodeMs, totalMs: performance.now() - t0 },
    };
  }

  /**
   * The baseline E2LLM is measured against: the same decoder reading the document's own tokens in place of the soft
   * tokens. Refused with CONTEXT_TOO_LONG when the tokens do not fit the window.
   */
  async askFullContext(text: string, task: Task, params: GenerationParams, hooks: GenerationHooks = {}): Promise<AskResult> {
    const t0 = performance.now();
    const prompt = this.promptIds(task);
    const docIds = this.decoder.tokenizer.encode(text);
    const chunkMs = performance.now() - t0;
    const gen = await this.decoder.generate({ ...prompt, softTokens: this.decoder.embed(docIds) }, params, hooks);
    return {
      answer: gen.text,
      finishReason: gen.finishReason,
      usage: {
        chars: text.length,
        chunks: 0,
        encoderTokens: 0,
        softTokens: 0,
        promptTokens: prompt.prefixIds.length + docIds.length + prompt.suffixIds.length,
        generatedTokens: gen.tokens.length,
      },
      timings: { chunkMs, encodeMs: 0, adapterMs: 0, prefillMs: gen.prefillMs, decodeMs: gen.decodeMs, totalMs: performance.now() - t0 },
    };
  }

  async release(): Promise<void> {
    await Promise.all(Object.values(this.parts).map((p) => p.release()));
  }
}

function unloaded(part: string): never {
  throw new AppError('INTERNAL', `the ${part} was not loaded in this process (this is a bug)`);
}
