import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { AppError, TENSORS, fromF16, kvNames, toF16, type FinishReason, type GenerationParams, type ModelManifest } from '@lib/shared';
import { createRng, pickToken } from './sampling.js';
import { expectDims, int64Tensor, openSession, run, type SessionSettings } from './sessions.js';
import type { TextTokenizer } from './tokenizer.js';

/**
 * Positions one prefill call takes. On CPU a one-pass prefill of 4,000 soft tokens took 7.1 s and blocks of 512 took
 * 0.7 s (1,000 positions: 0.46-0.55 s against 0.08-0.12 s) with the same last-position logits: the graph's attention
 * scores for a block stay in cache. Each call copies the KV cache so far (the graph concatenates past and new), which
 * is why far longer sequences (the bench's full-context baseline at 32k-128k) want larger blocks.
 */
export const PREFILL_BLOCK = 512;

export interface GenerationInput {
  /** Prompt ids before the soft tokens (BOS included). */
  prefixIds: number[];
  /** The document's positions [n, hiddenSize] in order: soft tokens, and the token embeddings of expanded chunks. */
  context: Float32Array;
  /** Prompt ids after the soft tokens. */
  suffixIds: number[];
}

export interface GenerationResult {
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  /** Logits each generated token was picked from (only when asked for: they are large). */
  stepLogits?: Float32Array[];
  prefillMs: number;
  decodeMs: number;
  /**
   * With hooks.attention and a decoder that exports it: the attention each prompt position received, summed over
   * the generated tokens (each the last query's weights, averaged over heads and layers), [prompt length].
   */
  promptAttention?: Float32Array;
}

export interface GenerationHooks {
  /** Text as it becomes final (held back while it could still turn into a stop sequence). */
  onText?: (delta: string) => void;
  keepLogits?: boolean;
  /** false recomputes the whole sequence every step instead of using the KV cache (the parity test's reference). */
  kvCache?: boolean;
  /** Checked every step: an aborted signal stops generation with JOB_CANCELLED. */
  signal?: AbortSignal;
  /** Sum the decoder's attention over the prompt while generating (GenerationResult.promptAttention). */
  attention?: boolean;
}

/** The decoder: input embeddings in, tokens out, with a KV cache across steps. */
export class Decoder {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly tokenizer: TextTokenizer,
    private readonly spec: ModelManifest['decoder'],
    private readonly table: Float32Array,
  ) {}

  static async open(path: string, embeddingsPath: string, tokenizer: TextTokenizer, spec: ModelManifest['decoder'], settings: SessionSettings): Promise<Decoder> {
    const table = await loadEmbeddingTable(embeddingsPath, spec);
    const expected = { inputs: TENSORS.decoder.inputs(spec.layers), outputs: TENSORS.decoder.outputs(spec.layers) };
    const decoder = new Decoder(await openSession(path, 'decoder', expected, settings), tokenizer, spec, table);
    // Warm-up and shape check: one token with an empty past.
    const out = await decoder.forward(decoder.embed([spec.bosTokenId ?? 0]), 1, 0, decoder.emptyPast());
    expectDims('decoder', 'logits', out.logits, [1, 1, spec.vocabSize]);
    expectDims('decoder', 'present.0.key', out['present.0.key'], [1, spec.kvHeads, 1, spec.headSize]);
    return decoder;
  }

  get window(): number {
    return this.spec.window;
  }

  /** Whether the package's decoder exports its attention (evidence by attention). */
  get hasAttention(): boolean {
    return this.spec.attentionOutput !== undefined;
  }

  /** Token embeddings, [ids.length, hiddenSize]. */
  embed(ids: readonly number[]): Float32Array {
    return embedIds(this.table, this.spec, ids);
  }

  async generate(input: GenerationInput, params: GenerationParams, hooks: GenerationHooks = {}): Promise<GenerationResult> {
    const d = this.spec.hiddenSize;
    const { prompt, promptLength } = assemblePrompt(input, params, this.spec, (ids) => this.embed(ids));
    const attentionName = hooks.attention ? this.spec.attentionOutput : undefined;
    const promptAttention = attentionName ? new Float32Array(promptLength) : undefined;
    const addAttention = (o: ort.InferenceSession.ReturnType) => {
      if (!attentionName || !promptAttention) return;
      const a = o[attentionName];
      if (!a || a.dims.length !== 2 || (a.dims[1] ?? 0) < promptLength) {
        throw new AppError('MODEL_MISMATCH', `decoder output ${attentionName} has dims [${a?.dims.join(', ') ?? 'none'}]; expected [1, >= ${promptLength}]`);
      }
      const data = this.spec.dtype === 'f32' ? (a.data as Float32Array) : fromF16(a.data as Uint16Array);
      for (let i = 0; i < promptLength; i++) promptAttention[i]! += data[i]!;
    };

    const useCache = hooks.kvCache ?? true;
    const rng = createRng(params.seed);
    const stream = new TextStream(this.tokenizer, params.stop, hooks.onText);
    const tokens: number[] = [];
    const stepLogits: Float32Array[] = [];
    let finishReason: FinishReason = 'length';

    const t0 = performance.now();
    let out = await this.prefill(prompt, promptLength);
    const prefillMs = performance.now() - t0;
    const t1 = performance.now();
    for (;;) {
      if (hooks.signal?.aborted) throw new AppError('JOB_CANCELLED', 'generation stopped: the job was cancelled');
      addAttention(out);
      let logits = this.logitsOf(out);
      if (hooks.keepLogits) stepLogits.push(logits);
      if (tokens.length < params.minNewTokens) {
        logits = Float32Array.from(logits);
        for (const eos of this.spec.eosTokenIds) logits[eos] = -Infinity;
      }
      const token = pickToken(logits, params, rng);
      if (this.spec.eosTokenIds.includes(token)) {
        finishReason = 'eos';
        break;
      }
      tokens.push(token);
      if (stream.push(tokens)) {
        finishReason = 'stop';
        break;
      }
      if (tokens.length >= params.maxNewTokens) break;
      if (useCache) {
        const past = promptLength + tokens.length - 1;
        out = await this.forward(this.embed([token]), 1, past, this.presentAsPast(out));
      } else {
        const all = new Float32Array((promptLength + tokens.length) * d);
        all.set(prompt, 0);
        all.set(this.embed(tokens), promptLength * d);
        out = await this.forward(all, promptLength + tokens.length, 0, this.emptyPast());
      }
    }
    const text = stream.finish(tokens);
    return {
      tokens,
      text,
      finishReason,
      ...(hooks.keepLogits ? { stepLogits } : {}),
      ...(promptAttention ? { promptAttention } : {}),
      prefillMs,
      decodeMs: performance.now() - t1,
    };
  }

  /**
   * The prompt in blocks of PREFILL_BLOCK positions over the KV cache: the last block's logits and attention are one
   * pass's (each block attends to every earlier position), and the graph, which materialises each block's attention
   * scores, works on [heads, block, positions] instead of [heads, positions, positions].
   */
  private async prefill(prompt: Float32Array, promptLength: number): Promise<ort.InferenceSession.ReturnType> {
    const d = this.spec.hiddenSize;
    let past = this.emptyPast();
    let out: ort.InferenceSession.ReturnType | undefined;
    for (let s = 0; s < promptLength; s += PREFILL_BLOCK) {
      const n = Math.min(PREFILL_BLOCK, promptLength - s);
      out = await this.forward(prompt.subarray(s * d, (s + n) * d), n, s, past);
      past = this.presentAsPast(out);
    }
    return out!;
  }

  /** One decoder call for a single sequence: `seq` new positions after `past` cached ones. */
  private async forward(embeds: Float32Array, seq: number, past: number, pastFeeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType> {
    const positions = Array.from({ length: seq }, (_, i) => past + i);
    const dims = [1, seq, this.spec.hiddenSize];
    const inputsEmbeds =
      this.spec.dtype === 'f32' ? new ort.Tensor('float32', embeds, dims) : new ort.Tensor('float16', toF16(embeds), dims);
    return run(this.session, 'decoder', {
      inputs_embeds: inputsEmbeds,
      attention_mask: int64Tensor(new Array<number>(past + seq).fill(1), [1, past + seq]),
      position_ids: int64Tensor(positions, [1, seq]),
      ...pastFeeds,
    });
  }

  private emptyPast(): Record<string, ort.Tensor> {
    const { kvHeads, headSize, layers, dtype } = this.spec;
    const feeds: Record<string, ort.Tensor> = {};
    for (const name of kvNames('past_key_values', layers)) {
      feeds[name] = dtype === 'f32'
        ? new ort.Tensor('float32', new Float32Array(0), [1, kvHeads, 0, headSize])
        : new ort.Tensor('float16', new Uint16Array(0), [1, kvHeads, 0, headSize]);
    }
    return feeds;
  }

  /** The present tensors feed the next step as they are: no copy. */
  private presentAsPast(out: ort.InferenceSession.ReturnType): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    const present = kvNames('present', this.spec.layers);
    kvNames('past_key_values', this.spec.layers).forEach((name, i) => {
      feeds[name] = out[present[i]!]!;
    });
    return feeds;
  }

  private logitsOf(out: ort.InferenceSession.ReturnType): Float32Array {
    const logits = expectDims('decoder', 'logits', out.logits, [1, 1, this.spec.vocabSize]);
    return this.spec.dtype === 'f32' ? (logits.data as Float32Array) : fromF16(logits.data as Uint16Array);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

/**
 * The decoder's whole input, [prefix tokens | document positions | suffix tokens] as embeddings, refused with
 * CONTEXT_TOO_LONG when it and the new tokens do not fit the window. Every backend sends exactly this.
 */
export function assemblePrompt(
  input: GenerationInput,
  params: Pick<GenerationParams, 'maxNewTokens'>,
  spec: Pick<ModelManifest['decoder'], 'hiddenSize' | 'window'>,
  embed: (ids: readonly number[]) => Float32Array,
): { prompt: Float32Array; promptLength: number } {
  const d = spec.hiddenSize;
  const contextCount = input.context.length / d;
  if (!Number.isInteger(contextCount)) throw new AppError('INTERNAL', 'the context is not a whole number of rows (this is a bug)');
  const promptLength = input.prefixIds.length + contextCount + input.suffixIds.length;
  if (promptLength + params.maxNewTokens > spec.window) {
    throw new AppError(
      'CONTEXT_TOO_LONG',
      `the prompt needs ${promptLength} positions (${contextCount} for the document) plus ${params.maxNewTokens} new tokens; the decoder window is ${spec.window}`,
      { promptLength, contextPositions: contextCount, maxNewTokens: params.maxNewTokens, window: spec.window },
    );
  }
  const prompt = new Float32Array(promptLength * d);
  prompt.set(embed(input.prefixIds), 0);
  prompt.set(input.context, input.prefixIds.length * d);
  prompt.set(embed(input.suffixIds), (input.prefixIds.length + contextCount) * d);
  return { prompt, promptLength };
}

/** The package's token embedding table (embed_tokens.bin) as float32, [vocabSize, hiddenSize]. */
export async function loadEmbeddingTable(path: string, spec: Pick<ModelManifest['decoder'], 'embeddings'>): Promise<Float32Array> {
  const bytes = await readFile(path);
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return spec.embeddings.dtype === 'f32' ? new Float32Array(buffer) : fromF16(new Uint16Array(buffer));
}

/** Rows of the embedding table for `ids`, [ids.length, hiddenSize]. */
export function embedIds(table: Float32Array, spec: Pick<ModelManifest['decoder'], 'hiddenSize' | 'vocabSize'>, ids: readonly number[]): Float32Array {
  const d = spec.hiddenSize;
  const out = new Float32Array(ids.length * d);
  ids.forEach((id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= spec.vocabSize) throw new AppError('INTERNAL', `token id ${id} out of range (this is a bug)`);
    out.set(table.subarray(id * d, (id + 1) * d), i * d);
  });
  return out;
}

/**
 * Decoded text as tokens arrive, with stop sequences. Text is passed on only once it can no longer become part of a
 * stop sequence or of an unfinished multi-byte character, so a streamed answer never shows what the final one cuts.
 * The answer starts at its first non-space character: tokenizers mark a word's start with a space (" Ada"), which is
 * not part of the answer, and a streamed answer drops the same space as the final one, so the two stay equal.
 */
export class TextStream {
  private emitted = 0;
  private readonly holdBack: number;

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly stop: readonly string[],
    private readonly onText?: (delta: string) => void,
  ) {
    this.holdBack = Math.max(0, ...stop.map((s) => s.length - 1));
  }

  private cut = -1;

  /** Returns true when a stop sequence has appeared. */
  push(tokens: number[]): boolean {
    const text = this.tokenizer.decode(tokens).trimStart();
    const hits = this.stop.map((s) => text.indexOf(s)).filter((i) => i >= 0);
    if (hits.length > 0) {
      this.cut = Math.min(...hits);
      return true;
    }
    let stable = text.length - this.holdBack;
    while (stable > 0 && text.charCodeAt(stable - 1) === 0xfffd) stable--;
    if (stable > this.emitted) {
      this.onText?.(text.slice(this.emitted, stable));
      this.emitted = stable;
    }
    return false;
  }

  finish(tokens: number[]): string {
    const full = this.tokenizer.decode(tokens).trimStart();
    const text = this.cut >= 0 ? full.slice(0, this.cut) : full;
    if (text.length > this.emitted) this.onText?.(text.slice(this.emitted));
    return text;
  }
}
