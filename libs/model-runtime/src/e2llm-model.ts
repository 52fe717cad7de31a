import {
  AppError,
  pageStarts,
  type Config,
  type Evidence,
  type ExpansionLimit,
  type GenerationParams,
  type Task,
  type Timings,
  type Usage,
  type FinishReason,
} from '@lib/shared';
import type { GenerationHooks, GenerationResult } from './decoder.js';
import { openDecoderEngine, openEncoderEngine, type DecoderBackendSettings, type DecoderEngine, type EncoderBackendSettings } from './engines/index.js';
import { bm25Scores, buildEvidence, rankByScore, type ChunkScores, type TextChunk } from './evidence.js';
import { ChunkEncoder, SoftTokenAdapter, type EncoderEngine } from './encoder.js';
import { encoderIdFor, loadModelPackage, type ModelPackage } from './model-package.js';
import { DocumentPlanner, type EncodableChunk } from './planner.js';
import { TextTokenizer } from './tokenizer.js';

export type RuntimeSettings = Pick<
  Config,
  'modelPath' | 'executionProviders' | 'intraOpThreads' | 'graphOptimization' | 'encoderMaxBatchTokens' | 'encoderMaxBatchSize'
> &
  Partial<Pick<Config, 'evidenceScorer'>> &
  DecoderBackendSettings &
  EncoderBackendSettings;

export interface AskResult {
  answer: string;
  finishReason: FinishReason;
  usage: Usage;
  timings: Timings;
  evidence: Evidence[];
  /** The chunks and every scorer's scores over them (not part of the printed result; the evaluation reads them). */
  grounding: { chunks: readonly TextChunk[]; scores: ChunkScores };
}

/**
 * The part of the model a decoder worker runs: the seam its processor is written against, so a unit test can put a
 * fake runner in its place (E2llmModel is the real one).
 */
export interface DecodeRunner {
  readonly encoderId: string;
  readonly pkg: { readonly manifest: Pick<ModelPackage['manifest'], 'encoder'> };
  readonly adapter: Pick<SoftTokenAdapter, 'run'>;
  promptIds(task: Task): { prefixIds: number[]; suffixIds: number[] };
  checkBudget(chunks: number, prompt: { prefixIds: number[]; suffixIds: number[] }, maxNewTokens: number): void;
  generateGrounded(input: GroundedInput, hooks?: GenerationHooks): Promise<GroundedResult>;
}

/** The part of the model an encoder worker runs (its processor's seam; E2llmModel is the real one). */
export interface EncodeRunner {
  readonly encoderId: string;
  readonly pkg: { readonly manifest: Pick<ModelPackage['manifest'], 'encoder'> };
  /** The chunk encoder of the configured backend (ONNX in-process, or text-embeddings-inference). */
  readonly chunkEncoder: Pick<EncoderEngine, 'encodeChunks'>;
  /** The ids the encoder sees for one chunk (the planner's: the same the API measured the chunk with). */
  encoderIds(text: string): number[];
  /** The planner's tokenizerId: ids the API measured with the same one are used as they are. */
  readonly tokenizerId: string;
}

/** What the grounded decode needs besides the soft tokens: the chunks' texts and offsets (null when lost). */
export interface GroundedInput {
  /** The document's chunks in order, one per soft token; null when the text is not available. */
  chunks: readonly TextChunk[] | null;
  /** One soft token per chunk, [chunks, hiddenSize]. */
  softTokens: Float32Array;
  task: Task;
  params: GenerationParams;
  /** Sorted page start offsets of a PDF's extracted text, for evidence pages. */
  pageStarts?: readonly number[];
  /** Who asks (the tenant): the chunks' search index is kept for the next question in this scope (evidence.ts). */
  cacheScope?: string;
}

export interface GroundedResult {
  gen: GenerationResult;
  evidence: Evidence[];
  /** Every scorer's scores over the chunks (the evaluation measures each). */
  scores: ChunkScores;
  expansion: Pick<Usage, 'expansionRequested' | 'expandedChunks' | 'expandedTokens' | 'expansionLimitedBy'>;
  /** Context positions other than expanded tokens. */
  softTokens: number;
  promptTokens: number;
  scoringMs: number;
  expandMs: number;
}

/**
 * The whole E2LLM model in-process: chunker, encoder, adapter and decoder of one package. Used by the CLI, by the
 * workers (each through the stage it runs) and by the evaluation harness. It knows nothing of queues or HTTP.
 */
export class E2llmModel implements DecodeRunner, EncodeRunner {
  private constructor(
    readonly pkg: ModelPackage,
    /** The chunker and prompt lengths, the same the API admits jobs with. */
    readonly planner: DocumentPlanner,
    private readonly parts: { encoder?: EncoderEngine; adapter?: SoftTokenAdapter; decoder?: DecoderEngine },
    private readonly evidenceScorer: NonNullable<RuntimeSettings['evidenceScorer']>,
    /** The identity soft prompts are stored under: the package's encoder, or the model TEI serves (encoderIdFor). */
    readonly encoderId: string,
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
    const parts: { encoder?: EncoderEngine; adapter?: SoftTokenAdapter; decoder?: DecoderEngine } = {};
    if (stages.encoder) parts.encoder = await openEncoderEngine(pkg, encTok, limits, settings);
    if (stages.decoder) {
      parts.adapter = await SoftTokenAdapter.open(pkg.files.adapter, m.adapter, settings);
      parts.decoder = await openDecoderEngine(pkg, decTok, settings);
    }
    return new E2llmModel(pkg, new DocumentPlanner(m, encTok, decTok), parts, settings.evidenceScorer ?? 'bm25', encoderIdFor(pkg, settings));
  }

  /** The in-process ONNX encoder (the parity and evaluation tools read it directly). */
  get encoder(): ChunkEncoder {
    const e = this.parts.encoder ?? unloaded('encoder');
    if (!(e instanceof ChunkEncoder)) throw new AppError('INTERNAL', 'the encoder runs on text-embeddings-inference in this process: there is no ONNX encoder (this is a bug)');
    return e;
  }

  get chunkEncoder(): EncoderEngine {
    return this.parts.encoder ?? unloaded('encoder');
  }

  get adapter(): SoftTokenAdapter {
    return this.parts.adapter ?? unloaded('adapter');
  }

  get decoder(): DecoderEngine {
    return this.parts.decoder ?? unloaded('decoder');
  }

  chunk(text: string): EncodableChunk[] {
    return this.planner.chunk(text);
  }

  encoderIds(text: string): number[] {
    return this.planner.encoderIds(text);
  }

  get tokenizerId(): string {
    return this.planner.tokenizerId;
  }

  promptIds(task: Task): { prefixIds: number[]; suffixIds: number[] } {
    return this.planner.promptIds(task);
  }

  /** Refuses, before any encoding, a document whose soft tokens and prompt cannot fit the decoder window. */
  checkBudget(chunks: number, prompt: { prefixIds: number[]; suffixIds: number[] }, maxNewTokens: number): void {
    this.planner.checkBudget(chunks, prompt.prefixIds.length + prompt.suffixIds.length, maxNewTokens);
  }

  /** Every stage in-process: what `e2llm ask` runs. */
  async ask(text: string, task: Task, params: GenerationParams, hooks: GenerationHooks = {}): Promise<AskResult> {
    const t0 = performance.now();
    const chunks = this.chunk(text);
    const chunkMs = performance.now() - t0;
    this.checkBudget(chunks.length, this.promptIds(task), params.maxNewTokens);

    const t1 = performance.now();
    const embeddings = await this.chunkEncoder.encodeChunks(chunks);
    const encodeMs = performance.now() - t1;
    const t2 = performance.now();
    const softTokens = await this.adapter.run(embeddings, chunks.length);
    const adapterMs = performance.now() - t2;

    const g = await this.generateGrounded({ chunks, softTokens, task, params, pageStarts: pageStarts(text) }, hooks);
    return {
      answer: g.gen.text,
      finishReason: g.gen.finishReason,
      usage: {
        chars: text.length,
        chunks: chunks.length,
        encoderTokens: chunks.reduce((a, c) => a + c.ids.length, 0),
        softTokens: g.softTokens,
        promptTokens: g.promptTokens,
        generatedTokens: g.gen.tokens.length,
        ...g.expansion,
      },
      timings: {
        chunkMs,
        encodeMs,
        adapterMs,
        scoringMs: g.scoringMs,
        expandMs: g.expandMs,
        prefillMs: g.gen.prefillMs,
        decodeMs: g.gen.decodeMs,
        totalMs: performance.now() - t0,
      },
      evidence: g.evidence,
      grounding: { chunks, scores: g.scores },
    };
  }

  /**
   * The decode every path shares (e2llm ask, the decoder worker, the evaluation): score the chunks against the
   * question, give the decoder the best `params.expand.chunks` of them as raw tokens in their place (those that fit
   * the window), generate, and list the evidence the answer rests on.
   */
  async generateGrounded(input: GroundedInput, hooks: GenerationHooks = {}): Promise<GroundedResult> {
    const { chunks, softTokens, task, params } = input;
    const d = this.pkg.manifest.decoder.hiddenSize;
    const n = softTokens.length / d;
    if (chunks && chunks.length !== n) throw new AppError('INTERNAL', `${chunks.length} chunk texts for ${n} soft tokens (this is a bug)`);
    const prompt = this.promptIds(task);
    const query = task.type === 'qa' ? task.question : task.type === 'instruct' ? task.instruction : null;

    const t0 = performance.now();
    const scores: ChunkScores = {};
    if (chunks && query !== null) scores.bm25 = bm25Scores(query, chunks, input.cacheScope);
    const scoringMs = performance.now() - t0;

    const t1 = performance.now();
    const requested = params.expand.chunks;
    const chosen = new Map<number, number[]>();
    let limitedBy: ExpansionLimit | undefined;
    if (requested > 0) {
      if (!chunks) limitedBy = 'source_missing';
      else if (!scores.bm25) limitedBy = 'no_query';
      else {
        const ranked = rankByScore(scores.bm25);
        const floor = ranked.length > 0 ? scores.bm25[ranked[0]!]! * params.expand.minScoreRatio : 0;
        let free = this.decoder.window - (prompt.prefixIds.length + n + prompt.suffixIds.length + params.maxNewTokens);
        for (const i of ranked) {
          if (chosen.size === requested) break;
          if (scores.bm25[i]! < floor) {
            limitedBy ??= 'score';
            break;
          }
          const ids = this.decoder.tokenizer.encode(chunks[i]!.text);
          if (ids.length - 1 <= free) {
            chosen.set(i, ids);
            free -= ids.length - 1;
          } else limitedBy = 'window';
        }
        if (!limitedBy && chosen.size < Math.min(requested, n)) limitedBy = 'no_match';
      }
    }
    const expandedTokens = [...chosen.values()].reduce((a, ids) => a + ids.length, 0);
    const positions = n - chosen.size + expandedTokens;
    const context = new Float32Array(positions * d);
    // each chunk's first position in the context and how many it takes
    const place: { at: number; len: number }[] = [];
    let at = 0;
    for (let i = 0; i < n; i++) {
      const ids = chosen.get(i);
      if (ids) {
        context.set(this.decoder.embed(ids), at * d);
        place.push({ at, len: ids.length });
        at += ids.length;
      } else {
        context.set(softTokens.subarray(i * d, (i + 1) * d), at * d);
        place.push({ at, len: 1 });
        at += 1;
      }
    }
    const expandMs = performance.now() - t1;

    const gen = await this.decoder.generate({ ...prompt, context }, params, { ...hooks, attention: hooks.attention ?? this.decoder.hasAttention });
    if (gen.promptAttention) {
      const a = gen.promptAttention;
      const off = prompt.prefixIds.length;
      scores.attention = Float64Array.from(place, ({ at: p, len }) => {
        let sum = 0;
        for (let k = 0; k < len; k++) sum += a[off + p + k]!;
        return sum;
      });
    }
    const evidence = chunks ? buildEvidence(chunks, scores, this.evidenceScorer, new Set(chosen.keys()), input.pageStarts) : [];
    return {
      gen,
      evidence,
      scores,
      expansion: {
        expansionRequested: requested,
        expandedChunks: chosen.size,
        expandedTokens,
        ...(limitedBy ? { expansionLimitedBy: limitedBy } : {}),
      },
      softTokens: n - chosen.size,
      promptTokens: prompt.prefixIds.length + prompt.suffixIds.length,
      scoringMs,
      expandMs,
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
    const gen = await this.decoder.generate({ ...prompt, context: this.decoder.embed(docIds) }, params, hooks);
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
        expansionRequested: 0,
        expandedChunks: 0,
        expandedTokens: 0,
      },
      timings: { chunkMs, encodeMs: 0, adapterMs: 0, scoringMs: 0, expandMs: 0, prefillMs: gen.prefillMs, decodeMs: gen.decodeMs, totalMs: performance.now() - t0 },
      evidence: [],
      grounding: { chunks: [], scores: {} },
    };
  }

  async release(): Promise<void> {
    await Promise.all(Object.values(this.parts).map((p) => p.release()));
  }
}

function unloaded(part: string): never {
  throw new AppError('INTERNAL', `the ${part} was not loaded in this process (this is a bug)`);
}
