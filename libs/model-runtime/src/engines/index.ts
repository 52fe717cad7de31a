import { AppError, type Config } from '@lib/shared';
import { Decoder } from '../decoder.js';
import { ChunkEncoder, type BatchLimits, type EncoderEngine } from '../encoder.js';
import { encoderGraphFor, type ModelPackage } from '../model-package.js';
import type { SessionSettings } from '../sessions.js';
import type { TextTokenizer } from '../tokenizer.js';
import { RemoteDecoder, type DecoderEngine } from './decoder-engine.js';
import { sglangProtocol } from './sglang.js';
import { TeiEncoder } from './tei-encoder.js';
import { vllmProtocol } from './vllm.js';

export * from './decoder-engine.js';
export * from './engine-http.js';
export { sglangProtocol } from './sglang.js';
export { TeiEncoder, type TeiSettings } from './tei-encoder.js';
export { torchSaveFloat32 } from './torch-save.js';
export { vllmProtocol } from './vllm.js';

/** The settings that choose and reach a decoder backend (all optional: unset means the in-process ONNX decoder). */
export type DecoderBackendSettings = Partial<
  Pick<
    Config,
    'decoderBackend' | 'decoderEngineUrl' | 'decoderEngineModel' | 'decoderEngineApiKey' | 'decoderEngineTimeoutMs' | 'decoderEngineConcurrency' | 'promptEmbedsMaxNorm' | 'engineStartTimeoutMs'
  >
>;

/**
 * Opens the package's decoder on the configured backend: onnxruntime in-process (the default), or a vLLM or SGLang
 * server that is checked end to end before this returns. A remote backend never opens decoder.onnx.
 */
export async function openDecoderEngine(pkg: ModelPackage, tokenizer: TextTokenizer, settings: SessionSettings & DecoderBackendSettings): Promise<DecoderEngine> {
  const backend = settings.decoderBackend ?? 'onnx';
  const spec = pkg.manifest.decoder;
  if (backend === 'onnx') return Decoder.open(pkg.files.decoder, pkg.files.embeddings, tokenizer, spec, settings);
  if (!settings.decoderEngineUrl) throw new AppError('CONFIG_INVALID', `DECODER_ENGINE_URL is required when DECODER_BACKEND=${backend}`);
  if (backend === 'vllm' && !settings.decoderEngineModel) throw new AppError('CONFIG_INVALID', 'DECODER_ENGINE_MODEL is required when DECODER_BACKEND=vllm');
  const remote = {
    decoderEngineUrl: settings.decoderEngineUrl,
    ...(settings.decoderEngineApiKey ? { decoderEngineApiKey: settings.decoderEngineApiKey } : {}),
    decoderEngineTimeoutMs: settings.decoderEngineTimeoutMs ?? 60_000,
    decoderEngineConcurrency: settings.decoderEngineConcurrency ?? 16,
    promptEmbedsMaxNorm: settings.promptEmbedsMaxNorm ?? 1000,
    engineStartTimeoutMs: settings.engineStartTimeoutMs ?? 0,
  };
  const protocol = backend === 'vllm' ? vllmProtocol(settings.decoderEngineModel!) : sglangProtocol();
  return RemoteDecoder.open(protocol, pkg.files.embeddings, tokenizer, spec, remote);
}

/** The settings that choose and reach an encoder backend (unset: the in-process ONNX encoder). */
export type EncoderBackendSettings = Partial<
  Pick<Config, 'encoderBackend' | 'encoderPrecision' | 'encoderEngineUrl' | 'encoderEngineModelId' | 'encoderEngineApiKey' | 'encoderEngineTimeoutMs' | 'engineStartTimeoutMs'>
>;

/**
 * Opens the package's chunk encoder on the configured backend: onnxruntime in-process (the default), or
 * text-embeddings-inference, checked (model identity, input length, vector width) before this returns.
 */
export async function openEncoderEngine(
  pkg: ModelPackage,
  tokenizer: TextTokenizer,
  limits: BatchLimits,
  settings: SessionSettings & EncoderBackendSettings,
): Promise<EncoderEngine> {
  const spec = pkg.manifest.encoder;
  if ((settings.encoderBackend ?? 'onnx') === 'onnx') return ChunkEncoder.open(encoderGraphFor(pkg, settings).path, tokenizer, spec, limits, settings);
  if (!settings.encoderEngineUrl || !settings.encoderEngineModelId) {
    throw new AppError('CONFIG_INVALID', 'ENCODER_ENGINE_URL and ENCODER_ENGINE_MODEL_ID are required when ENCODER_BACKEND=tei');
  }
  if (spec.width !== pkg.manifest.adapter.inputWidth) throw new AppError('MODEL_INVALID', 'the manifest\'s encoder.width differs from adapter.inputWidth');
  return TeiEncoder.open(
    {
      encoderEngineUrl: settings.encoderEngineUrl,
      encoderEngineModelId: settings.encoderEngineModelId,
      encoderEngineTimeoutMs: settings.encoderEngineTimeoutMs ?? 60_000,
      engineStartTimeoutMs: settings.engineStartTimeoutMs ?? 0,
      ...(settings.encoderEngineApiKey ? { encoderEngineApiKey: settings.encoderEngineApiKey } : {}),
    },
    spec,
  );
}
