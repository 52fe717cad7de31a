import { z } from 'zod';
import { AppError, type GenerationParams } from '@lib/shared';
import type { DecoderProtocol, EngineFinish, StreamStep } from './decoder-engine.js';
import { checkEngineShape, engineHttpError } from './engine-http.js';
import { torchSaveFloat32 } from './torch-save.js';

const TokenId = z.number().int();

/** An error vLLM sends inside its stream once the answer has started (the HTTP status is already 200). */
const StreamError = z.object({ error: z.object({ message: z.string().optional(), code: z.number().int().optional() }).passthrough() });

/** One chunk of vLLM's streamed completion (`stream: true`, `return_token_ids: true`); usage-only chunks have no choices. */
const CompletionChunk = z.object({
  choices: z.array(
    z.object({
      index: z.number().int(),
      text: z.string().optional(),
      /** The chunk's new token ids (vLLM >= 0.10.2 with return_token_ids). */
      token_ids: z.array(TokenId).nullish(),
      finish_reason: z.string().nullish(),
      /** The stop string or stop token id that ended the answer, when one did. */
      stop_reason: z.union([z.string(), z.number(), z.null()]).optional(),
    }),
  ),
});

/**
 * vLLM's OpenAI-compatible completions endpoint with `prompt_embeds` (served with `--enable-prompt-embeds`): the
 * prompt travels as base64 of `torch.save(tensor)` bytes, a float32 [rows, hidden] tensor, which vLLM reads with
 * `torch.load(..., weights_only=True)`. Tokens stream back as server-sent events with their ids.
 */
export function vllmProtocol(model: string): DecoderProtocol {
  return {
    engine: 'vLLM',
    generatePath: 'v1/completions',
    healthPath: 'health',
    request: (prompt: Float32Array, shape: readonly [number, number], p: GenerationParams, eosTokenIds: readonly number[]) => ({
      model,
      prompt_embeds: torchSaveFloat32(prompt, shape).toString('base64'),
      max_tokens: p.maxNewTokens,
      min_tokens: p.minNewTokens,
      temperature: p.temperature,
      top_p: p.topP,
      top_k: p.topK > 0 ? p.topK : -1,
      // Sent explicitly: vLLM otherwise takes defaults from the model's generation_config.json (Qwen2.5 sets
      // repetition_penalty 1.05), and the answer would no longer be the one the ONNX decoder gives.
      repetition_penalty: 1,
      presence_penalty: 0,
      frequency_penalty: 0,
      min_p: 0,
      seed: p.seed,
      stop: p.stop,
      stop_token_ids: eosTokenIds,
      n: 1,
      stream: true,
      stream_options: { include_usage: true },
      return_token_ids: true,
    }),
    reader: () => (event: unknown): StreamStep => {
      const failed = StreamError.safeParse(event);
      if (failed.success) {
        const { code, message } = failed.data.error;
        throw engineHttpError('vLLM', code ?? 500, message ?? JSON.stringify(failed.data.error));
      }
      const chunk = checkEngineShape('vLLM', event, CompletionChunk);
      if (chunk.choices.length === 0) return { ids: [] };
      if (chunk.choices.length > 1 || chunk.choices[0]!.index !== 0) {
        throw new AppError('ENGINE_BAD_RESPONSE', `vLLM streamed ${chunk.choices.length} choices (index ${chunk.choices[0]!.index}) for a request of one`);
      }
      const c = chunk.choices[0]!;
      if (c.token_ids == null && (c.text ?? '') !== '') {
        throw new AppError('ENGINE_BAD_RESPONSE', 'vLLM streamed text without token ids: it needs return_token_ids (vLLM 0.10.2 or later; 0.11.1 or later for CVE-2025-62164)');
      }
      return { ids: c.token_ids ?? [], ...(c.finish_reason ? { finish: finishOf('vLLM', c.finish_reason, c.stop_reason) } : {}) };
    },
  };
}

/** vLLM's and SGLang's finish reasons: stop (EOS, a stop token or string) and length end an answer; anything else (abort) failed it. */
export function finishOf(engine: string, reason: string, matched: unknown): EngineFinish {
  if (reason === 'length') return { kind: 'length' };
  if (reason === 'stop') return typeof matched === 'string' ? { kind: 'stop', matched } : { kind: 'stop' };
  throw new AppError('ENGINE_UNAVAILABLE', `${engine} ended the answer with finish reason ${JSON.stringify(reason)}`);
}
