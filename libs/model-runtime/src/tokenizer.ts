import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';
import { AppError } from '@lib/shared';

/** A Hugging Face tokenizer.json, used without its special-token post-processing: the runtime adds those itself. */
export class TextTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    /** sha256 (hex) of its tokenizer.json: what it is, for ids measured by one and used by another. */
    readonly sha256: string,
  ) {}

  static async load(path: string): Promise<TextTokenizer> {
    let json: unknown;
    try {
      const text = await readFile(path, 'utf8');
      json = JSON.parse(text);
      return new TextTokenizer(new Tokenizer(json as object, {}), createHash('sha256').update(text).digest('hex'));
    } catch (err) {
      throw new AppError('MODEL_INVALID', `cannot load tokenizer ${path}: ${(err as Error).message}`);
    }
  }

  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Exact text of the ids: no clean-up of spaces before punctuation, special tokens dropped. */
  decode(ids: number[]): string {
    // tokenizers.js throws on an empty list; an answer that is EOS at once is the empty string.
    if (ids.length === 0) return '';
    return this.tokenizer.decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }
}
