import { z } from 'zod';
import { AppError, type Config, type ModelManifest } from '@lib/shared';
import type { ChunkToEncode, EncoderEngine } from '../encoder.js';
import { EngineCall, untilEngineAnswers, type EngineEndpoint } from './engine-http.js';

/** TEI's GET /info, the fields checked at start. */
const Info = z.object({
  model_id: z.string(),
  model_sha: z.string().nullish(),
  model_type: z.object({ embedding: z.object({ pooling: z.string() }).passthrough() }).passthrough(),
  max_input_length: z.number().int().positive(),
  max_client_batch_size: z.number().int().positive(),
  version: z.string().optional(),
}).passthrough();

const Vectors = z.array(z.array(z.number()));

export type TeiSettings = Pick<Config, 'encoderEngineTimeoutMs'> & {
  encoderEngineUrl: string;
  /** model_id@model_sha that /info must report. */
  encoderEngineModelId: string;
  encoderEngineApiKey?: string;
  /** How long open() waits for a TEI that is unreachable or loading (0: not at all). */
  engineStartTimeoutMs?: number;
};

/**
 * The chunk encoder served by Hugging Face text-embeddings-inference: chunk texts go to `POST /embed` with
 * `normalize: false` (the adapter was trained on raw pooled vectors) and `truncate: false` (a chunk the model cannot
 * take whole is an error, never silently cut), in requests of at most TEI's max_client_batch_size texts.
 */
export class TeiEncoder implements EncoderEngine {
  private constructor(
    private readonly endpoint: EngineEndpoint,
    private readonly width: number,
    private readonly batchSize: number,
  ) {}

  /**
   * Checks TEI before the worker takes a job: /info must name the configured model and revision, pool as the package's
   * encoder does, take chunks as long as the package cuts them, and a warm-up vector must have the adapter's width.
   */
  static async open(settings: TeiSettings, spec: ModelManifest['encoder']): Promise<TeiEncoder> {
    const endpoint: EngineEndpoint = {
      name: 'TEI',
      baseUrl: settings.encoderEngineUrl,
      timeoutMs: settings.encoderEngineTimeoutMs,
      ...(settings.encoderEngineApiKey ? { apiKey: settings.encoderEngineApiKey } : {}),
    };
    const info = await untilEngineAnswers(settings.engineStartTimeoutMs ?? 0, async () => {
      const call = new EngineCall(endpoint);
      try {
        return await call.json(await call.request('GET', 'info'), Info);
      } finally {
        call.close();
      }
    });
    const serving = `${info.model_id}@${info.model_sha ?? 'none'}`;
    if (serving !== settings.encoderEngineModelId) {
      throw new AppError('MODEL_MISMATCH', `TEI serves ${serving}; ENCODER_ENGINE_MODEL_ID is ${settings.encoderEngineModelId} (soft prompts are stored under the model's identity)`);
    }
    const pooling = info.model_type.embedding.pooling;
    if (pooling !== spec.pooling) {
      throw new AppError('MODEL_MISMATCH', `TEI pools ${pooling}; the package's encoder (and its adapter) use ${spec.pooling} pooling (TEI --pooling)`);
    }
    if (info.max_input_length < spec.maxTokens) {
      throw new AppError('MODEL_MISMATCH', `TEI takes ${info.max_input_length} tokens per input; the package cuts chunks of up to ${spec.maxTokens}`);
    }
    const encoder = new TeiEncoder(endpoint, spec.width, info.max_client_batch_size);
    await encoder.encodeChunks([{ text: 'warm up', ids: [] }]);
    return encoder;
  }

  async encodeChunks(chunks: readonly ChunkToEncode[]): Promise<Float32Array> {
    const out = new Float32Array(chunks.length * this.width);
    for (let start = 0; start < chunks.length; start += this.batchSize) {
      const texts = chunks.slice(start, start + this.batchSize).map((c) => c.text);
      const call = new EngineCall(this.endpoint);
      let vectors: number[][];
      try {
        vectors = await call.json(await call.request('POST', 'embed', { inputs: texts, normalize: false, truncate: false }), Vectors);
      } finally {
        call.close();
      }
      if (vectors.length !== texts.length) {
        throw new AppError('ENGINE_BAD_RESPONSE', `TEI returned ${vectors.length} vectors for ${texts.length} texts`);
      }
      vectors.forEach((v, i) => {
        if (v.length !== this.width) {
          throw new AppError('ENGINE_BAD_RESPONSE', `TEI returned a vector of width ${v.length}; the adapter reads ${this.width} (the manifest's encoder.width)`);
        }
        if (!v.every(Number.isFinite)) throw new AppError('ENGINE_BAD_RESPONSE', `TEI returned a vector with a non-finite value for text ${start + i}`);
        out.set(v, (start + i) * this.width);
      });
    }
    return out;
  }

  async release(): Promise<void> {
    // Nothing is held but the connection pool, which closes with the process.
  }
}
