import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AppError, chunkText, ModelManifest, type Chunk, type Task } from '@lib/shared';
import { promptParts } from './prompt.js';
import { TextTokenizer } from './tokenizer.js';

/** A package's manifest alone, validated (the API reads its window and chunking from it without loading a model). */
export async function readManifest(dir: string): Promise<ModelManifest> {
  try {
    return ModelManifest.parse(JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')));
  } catch (err) {
    throw new AppError('MODEL_INVALID', `cannot read the model manifest in ${dir}: ${(err as Error).message}`);
  }
}

/** A chunk with the encoder ids it was measured with, so it is tokenized once. */
export interface EncodableChunk extends Chunk {
  ids: number[];
}

/**
 * The one owner of a document's cut and of a prompt's length: the package's chunking settings and its tokenizers,
 * without any ONNX session. `e2llm ask`, the API (before it accepts a job) and the workers all cut with it, so the
 * chunk list the API stores is the one the encoder encodes, and a window is checked in tokens before anything runs.
 */
export class DocumentPlanner {
  constructor(
    private readonly manifest: Pick<ModelManifest, 'encoder' | 'decoder' | 'prompt'>,
    private readonly encoderTokenizer: TextTokenizer,
    readonly decoderTokenizer: TextTokenizer,
  ) {}

  /** Reads only the manifest and the tokenizers of a package folder (what the API needs; no weights). */
  static async load(dir: string): Promise<DocumentPlanner> {
    const manifest = await readManifest(dir);
    const enc = await TextTokenizer.load(join(dir, manifest.encoder.tokenizer));
    const dec = manifest.decoder.tokenizer === manifest.encoder.tokenizer ? enc : await TextTokenizer.load(join(dir, manifest.decoder.tokenizer));
    return new DocumentPlanner(manifest, enc, dec);
  }

  get window(): number {
    return this.manifest.decoder.window;
  }

  /** What makes encoder ids: the encoder's tokenizer and its CLS id (ids measured here are valid where this matches). */
  get tokenizerId(): string {
    return `${this.encoderTokenizer.sha256.slice(0, 32)}-cls${this.manifest.encoder.clsTokenId ?? 'none'}`;
  }

  /** The ids the encoder sees for one chunk: CLS (when the model has one) then the text's tokens. */
  encoderIds(text: string): number[] {
    const ids = this.encoderTokenizer.encode(text);
    const cls = this.manifest.encoder.clsTokenId;
    return cls === null ? ids : [cls, ...ids];
  }

  /**
   * Chunks as the model was trained: its chunk size and overlap, and never more tokens than the encoder takes. With
   * `limit`, cutting stops past that many chunks (the caller refuses the document).
   */
  chunk(text: string, limit?: number): EncodableChunk[] {
    const { chunkChars, overlapChars } = this.manifest.prompt.chunking;
    const ids = new Map<string, number[]>();
    const countTokens = (t: string) => {
      const tokens = this.encoderIds(t);
      ids.set(t, tokens);
      return tokens.length;
    };
    const chunks = chunkText(text, { chunkChars, overlapChars, maxTokens: this.manifest.encoder.maxTokens, countTokens, limit });
    return chunks.map((c) => ({ ...c, ids: ids.get(c.text) ?? this.encoderIds(c.text) }));
  }

  /** Prompt ids before and after the soft tokens. */
  promptIds(task: Task): { prefixIds: number[]; suffixIds: number[] } {
    const { prefix, suffix } = promptParts(this.manifest.prompt, task);
    const bos = this.manifest.decoder.bosTokenId;
    return { prefixIds: [...(bos === null ? [] : [bos]), ...this.decoderTokenizer.encode(prefix)], suffixIds: this.decoderTokenizer.encode(suffix) };
  }

  /** Refuses a document whose soft tokens and prompt cannot fit the decoder window. */
  checkBudget(chunks: number, promptTokens: number, maxNewTokens: number): void {
    const need = promptTokens + chunks + maxNewTokens;
    if (need > this.window) {
      throw new AppError(
        'CONTEXT_TOO_LONG',
        `the document needs ${chunks} soft tokens; with the prompt (${promptTokens} tokens) and ${maxNewTokens} new tokens that is ${need} positions, over the decoder window of ${this.window}`,
        { chunks, need, window: this.window },
      );
    }
  }
}
