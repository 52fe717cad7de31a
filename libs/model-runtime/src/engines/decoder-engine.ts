import { AppError, GenerationParams, type Config, type FinishReason, type ModelManifest } from '@lib/shared';
import { assemblePrompt, embedIds, loadEmbeddingTable, TextStream, type GenerationHooks, type GenerationInput, type GenerationResult } from '../decoder.js';
import type { TextTokenizer } from '../tokenizer.js';
import { EngineCall, EngineLimiter, untilEngineAnswers, type EngineEndpoint } from './engine-http.js';

/**
 * What the grounded decode needs from a decoder, whichever runs it: the in-process ONNX `Decoder` or a remote engine
 * (vLLM, SGLang). The worker assembles the prompt embeddings itself in both cases (template tokens from the package's
 * embedding table, soft tokens, expanded chunks), so every backend is given the same input.
 */
export interface DecoderEngine {
  readonly window: number;
  readonly tokenizer: TextTokenizer;
  /** Whether generate() can report the attention over the prompt (evidence by attention). */
  readonly hasAttention: boolean;
  embed(ids: readonly number[]): Float32Array;
  generate(input: GenerationInput, params: GenerationParams, hooks?: GenerationHooks): Promise<GenerationResult>;
  release(): Promise<void>;
}

/** How an engine finished, as it reported it. */
export type EngineFinish = { kind: 'length' } | { kind: 'stop'; matched?: string };

/** One streamed event read: the token ids it adds, and the finish when this event carries it. */
export interface StreamStep {
  ids: number[];
  finish?: EngineFinish;
}

/** One engine's wire format for a streamed generation from prompt embeddings. */
export interface DecoderProtocol {
  /** "vLLM", "SGLang": for messages. */
  readonly engine: string;
  readonly generatePath: string;
  readonly healthPath: string;
  /** The request body for prompt embeddings [rows, hidden] (float32, row-major). */
  request(prompt: Float32Array, shape: readonly [number, number], params: GenerationParams, eosTokenIds: readonly number[]): unknown;
  /** A reader for one request's events (it may keep state: SGLang can stream cumulative ids). */
  reader(): (event: unknown) => StreamStep;
}

export type RemoteDecoderSettings = Pick<Config, 'decoderEngineTimeoutMs' | 'decoderEngineConcurrency' | 'promptEmbedsMaxNorm'> & {
  decoderEngineUrl: string;
  decoderEngineApiKey?: string;
  /** How long open() waits for an engine that is unreachable or loading (0: not at all). */
  engineStartTimeoutMs?: number;
};

/**
 * A decoder served by an engine: the prompt embeddings go out, token ids stream back. Detokenizing, stop sequences,
 * EOS and the token limit are applied here with the package's tokenizer exactly as the ONNX decoder applies them, so
 * a greedy answer is the same text whichever backend produced the same tokens.
 */
export class RemoteDecoder implements DecoderEngine {
  readonly hasAttention = false;
  private readonly limiter: EngineLimiter;
  private readonly endpoint: EngineEndpoint;

  private constructor(
    private readonly protocol: DecoderProtocol,
    readonly tokenizer: TextTokenizer,
    private readonly spec: ModelManifest['decoder'],
    private readonly table: Float32Array,
    private readonly settings: RemoteDecoderSettings,
  ) {
    this.limiter = new EngineLimiter(settings.decoderEngineConcurrency);
    this.endpoint = {
      name: protocol.engine,
      baseUrl: settings.decoderEngineUrl,
      timeoutMs: settings.decoderEngineTimeoutMs,
      ...(settings.decoderEngineApiKey ? { apiKey: settings.decoderEngineApiKey } : {}),
    };
  }

  /**
   * Loads the embedding table, then checks the engine end to end before the worker takes a job: its health route,
   * then a one-token greedy answer to the BOS embedding (this also proves it accepts our embeddings and their width),
   * waiting up to engineStartTimeoutMs for an engine that is not up yet.
   */
  static async open(protocol: DecoderProtocol, embeddingsPath: string, tokenizer: TextTokenizer, spec: ModelManifest['decoder'], settings: RemoteDecoderSettings): Promise<RemoteDecoder> {
    const decoder = new RemoteDecoder(protocol, tokenizer, spec, await loadEmbeddingTable(embeddingsPath, spec), settings);
    const warm = { prefixIds: [spec.bosTokenId ?? spec.eosTokenIds[0] ?? 0], context: new Float32Array(0), suffixIds: [] };
    await untilEngineAnswers(settings.engineStartTimeoutMs ?? 0, async () => {
      const call = new EngineCall(decoder.endpoint);
      try {
        await (await call.request('GET', protocol.healthPath)).arrayBuffer();
      } finally {
        call.close();
      }
      await decoder.generate(warm, GenerationParams.parse({ maxNewTokens: 1, temperature: 0 }));
    });
    return decoder;
  }

  get window(): number {
    return this.spec.window;
  }

  embed(ids: readonly number[]): Float32Array {
    return embedIds(this.table, this.spec, ids);
  }

  async generate(input: GenerationInput, params: GenerationParams, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    const d = this.spec.hiddenSize;
    const { prompt, promptLength } = assemblePrompt(input, params, this.spec, (ids) => this.embed(ids));
    checkPromptEmbeds(prompt, promptLength, d, this.settings.promptEmbedsMaxNorm);
    if (hooks.signal?.aborted) throw new AppError('JOB_CANCELLED', 'generation stopped: the job was cancelled');
    return this.limiter.run(() => this.stream(prompt, [promptLength, d], params, hooks));
  }

  private async stream(prompt: Float32Array, shape: [number, number], params: GenerationParams, hooks: GenerationHooks): Promise<GenerationResult> {
    const { engine } = this.protocol;
    const eos = this.spec.eosTokenIds;
    const text = new TextStream(this.tokenizer, params.stop, hooks.onText);
    const tokens: number[] = [];
    let finishReason: FinishReason | undefined;
    let reported: EngineFinish | undefined;
    let firstAt: number | undefined;
    const t0 = performance.now();
    const call = new EngineCall(this.endpoint, hooks.signal);
    let events: AsyncGenerator<unknown, { done: boolean }> | undefined;
    try {
      const res = await call.request('POST', this.protocol.generatePath, this.protocol.request(prompt, shape, params, eos));
      const read = this.protocol.reader();
      events = call.events(res);
      let ended: { done: boolean } | undefined;
      reading: for (;;) {
        const next = await events.next();
        if (next.done) {
          ended = next.value;
          break;
        }
        const step = read(next.value);
        if (step.ids.length > 0) firstAt ??= performance.now();
        for (const id of step.ids) {
          if (!Number.isInteger(id) || id < 0 || id >= this.spec.vocabSize) {
            throw new AppError('ENGINE_BAD_RESPONSE', `${engine} sent token id ${id}; the package's vocabulary has ${this.spec.vocabSize}`);
          }
          if (eos.includes(id)) {
            finishReason = 'eos';
            break reading;
          }
          tokens.push(id);
          if (text.push(tokens)) {
            finishReason = 'stop';
            break reading;
          }
          if (tokens.length >= params.maxNewTokens) {
            finishReason = 'length';
            break reading;
          }
        }
        if (step.finish) {
          reported = step.finish;
          break;
        }
      }
      if (!finishReason) {
        if (!reported) {
          throw ended?.done
            ? new AppError('ENGINE_BAD_RESPONSE', `${engine} ended its stream without saying why the answer ended (after ${tokens.length} tokens)`)
            : new AppError('ENGINE_UNAVAILABLE', `${engine}'s stream was cut before the answer ended (after ${tokens.length} tokens)`);
        }
        // The engine stopped on an EOS or stop token it did not return, or on a stop string whose tokens it kept back.
        finishReason = reported.kind === 'length' ? 'length' : reported.matched !== undefined ? 'stop' : 'eos';
      }
    } finally {
      // Drops the connection first (the engine aborts a request whose client went away), then ends the reader.
      call.close();
      await events?.return({ done: false }).catch(() => undefined);
    }
    const answer = text.finish(tokens);
    const end = performance.now();
    return { tokens, text: answer, finishReason, prefillMs: (firstAt ?? end) - t0, decodeMs: end - (firstAt ?? end) };
  }

  async release(): Promise<void> {
    // Nothing is held but the connection pool, which closes with the process.
  }
}

/**
 * The checks prompt embeddings pass before they leave the worker: [rows, hidden] float32, every value finite, every
 * row's L2 norm within the cap. An engine is handed nothing our own adapter would not produce.
 */
export function checkPromptEmbeds(prompt: Float32Array, rows: number, hidden: number, maxNorm: number): void {
  if (!(prompt instanceof Float32Array) || rows < 1 || prompt.length !== rows * hidden) {
    throw new AppError('PROMPT_EMBEDS_INVALID', `prompt embeddings of ${prompt.length} values are not [${rows}, ${hidden}] float32`);
  }
  for (let r = 0; r < rows; r++) {
    let sum = 0;
    for (let i = r * hidden; i < (r + 1) * hidden; i++) {
      const v = prompt[i]!;
      if (!Number.isFinite(v)) throw new AppError('PROMPT_EMBEDS_INVALID', `prompt embedding row ${r} holds ${v}`, { row: r });
      sum += v * v;
    }
    const norm = Math.sqrt(sum);
    if (norm > maxNorm) {
      throw new AppError('PROMPT_EMBEDS_INVALID', `prompt embedding row ${r} has norm ${norm.toFixed(1)}, over PROMPT_EMBEDS_MAX_NORM (${maxNorm})`, { row: r, norm, maxNorm });
    }
  }
}
