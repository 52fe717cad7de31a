import { z } from 'zod';
import { AppError, type GenerationParams } from '@lib/shared';
import type { DecoderProtocol, StreamStep } from './decoder-engine.js';
import { checkEngineShape, engineHttpError, float32JsonArray, JsonText } from './engine-http.js';
import { finishOf } from './vllm.js';

const StreamError = z.object({ error: z.union([z.string(), z.object({ message: z.string().optional(), code: z.number().int().optional() }).passthrough()]) });

/** One event of SGLang's streamed `/generate`. */
const GenerateChunk = z.object({
  text: z.string().optional(),
  /** Generated ids: all so far by default, or only the new ones with --incremental-streaming-output. */
  output_ids: z.array(z.number().int()),
  meta_info: z.object({
    /** Tokens generated so far: tells cumulative ids from incremental ones. */
    completion_tokens: z.number().int().nonnegative(),
    finish_reason: z
      .object({ type: z.string(), matched: z.union([z.string(), z.number(), z.null()]).optional() })
      .passthrough()
      .nullish(),
  }).passthrough(),
});

/**
 * SGLang's native `/generate` with `input_embeds` (nested JSON arrays [rows][hidden]; the server runs with
 * --disable-radix-cache, as SGLang requires for embeddings). Tokens stream back as server-sent events. SGLang's
 * sampling has no per-request seed here: a sampled answer (temperature > 0) is not reproducible; greedy ones are.
 */
export function sglangProtocol(): DecoderProtocol {
  return {
    engine: 'SGLang',
    generatePath: 'generate',
    healthPath: 'health',
    request: (prompt: Float32Array, shape: readonly [number, number], p: GenerationParams, eosTokenIds: readonly number[]) => {
      const [rows, hidden] = shape;
      // Written by hand: a prompt of thousands of rows is mostly numbers, and float32 digits halve it (float32JsonArray).
      const inputEmbeds = `[${Array.from({ length: rows }, (_, r) => float32JsonArray(prompt.subarray(r * hidden, (r + 1) * hidden))).join(',')}]`;
      const rest = JSON.stringify({
        sampling_params: {
          max_new_tokens: p.maxNewTokens,
          min_new_tokens: p.minNewTokens,
          temperature: p.temperature,
          top_p: p.topP,
          top_k: p.topK > 0 ? p.topK : -1,
          // Explicit, as for vLLM: not the model's generation_config defaults.
          repetition_penalty: 1,
          min_p: 0,
          stop: p.stop,
          stop_token_ids: eosTokenIds,
        },
        stream: true,
      });
      return new JsonText(`{"input_embeds":${inputEmbeds},${rest.slice(1)}`);
    },
    reader: () => {
      let seen = 0;
      return (event: unknown): StreamStep => {
        const failed = StreamError.safeParse(event);
        if (failed.success) {
          const e = failed.data.error;
          throw typeof e === 'string' ? engineHttpError('SGLang', 500, e) : engineHttpError('SGLang', e.code ?? 500, e.message ?? JSON.stringify(e));
        }
        const chunk = checkEngineShape('SGLang', event, GenerateChunk);
        const total = chunk.meta_info.completion_tokens;
        let ids: number[];
        if (chunk.output_ids.length === total && total >= seen) ids = chunk.output_ids.slice(seen); // cumulative
        else if (chunk.output_ids.length === total - seen) ids = chunk.output_ids; // incremental
        else {
          throw new AppError('ENGINE_BAD_RESPONSE', `SGLang sent ${chunk.output_ids.length} output ids with completion_tokens ${total} after ${seen} tokens`);
        }
        seen = total;
        const f = chunk.meta_info.finish_reason;
        return { ids, ...(f ? { finish: finishOf('SGLang', f.type, f.matched) } : {}) };
      };
    },
  };
}
