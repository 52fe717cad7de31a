import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AppError, ModelManifest, type Config } from '@lib/shared';

/** A model package folder whose manifest has been validated and whose files all exist. */
export interface ModelPackage {
  dir: string;
  manifest: ModelManifest;
  /** Absolute paths of the package's files. */
  files: {
    encoder: string;
    /** The int8 encoder graph (manifest encoder.int8Onnx), when the package has one. */
    encoderInt8?: string;
    encoderTokenizer: string;
    adapter: string;
    decoder: string;
    decoderTokenizer: string;
    embeddings: string;
    golden?: string;
  };
  /**
   * Digest of everything that determines a chunk's soft prompt: encoder weights, tokenizer, pooling, token limit and
   * the chunking settings. A new model never reuses stale soft prompts stored under an older id.
   */
  encoderId: string;
  /** The same digest over the int8 encoder graph: its vectors differ slightly, so they are stored apart. */
  encoderInt8Id?: string;
}

export async function loadModelPackage(dir: string): Promise<ModelPackage> {
  const dirStat = await stat(dir).catch(() => null);
  if (!dirStat?.isDirectory()) throw new AppError('MODEL_NOT_FOUND', `model folder not found: ${dir}`);
  const manifestPath = join(dir, 'manifest.json');
  const raw = await readFile(manifestPath, 'utf8').catch(() => {
    throw new AppError('MODEL_NOT_FOUND', `model folder has no manifest.json: ${dir}`);
  });
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch (err) {
    throw new AppError('MODEL_INVALID', `manifest.json is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = ModelManifest.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    throw new AppError('MODEL_INVALID', `manifest.json is invalid: ${problems}`);
  }
  const m = parsed.data;
  const files = {
    encoder: join(dir, m.encoder.onnx),
    ...(m.encoder.int8Onnx ? { encoderInt8: join(dir, m.encoder.int8Onnx) } : {}),
    encoderTokenizer: join(dir, m.encoder.tokenizer),
    adapter: join(dir, m.adapter.onnx),
    decoder: join(dir, m.decoder.onnx),
    decoderTokenizer: join(dir, m.decoder.tokenizer),
    embeddings: join(dir, m.decoder.embeddings.file),
    ...(m.golden ? { golden: join(dir, m.golden) } : {}),
  };
  for (const [role, path] of Object.entries(files)) {
    const s = await stat(path).catch(() => null);
    if (!s?.isFile()) throw new AppError('MODEL_INVALID', `model package is missing its ${role} file: ${path}`);
  }
  const [rows, cols] = m.decoder.embeddings.shape;
  const expectedBytes = rows * cols * (m.decoder.embeddings.dtype === 'f32' ? 4 : 2);
  const embStat = await stat(files.embeddings);
  if (embStat.size !== expectedBytes) {
    throw new AppError('MODEL_INVALID', `${m.decoder.embeddings.file} has ${embStat.size} bytes; its shape needs ${expectedBytes}`);
  }
  const encoderId = (graph: string) => encoderDigest(graph, files.encoderTokenizer, m);
  return {
    dir,
    manifest: m,
    files,
    encoderId: await encoderId(files.encoder),
    ...(files.encoderInt8 ? { encoderInt8Id: await encoderId(files.encoderInt8) } : {}),
  };
}

async function encoderDigest(graph: string, tokenizer: string, m: ModelManifest): Promise<string> {
  const hash = createHash('sha256');
  hash.update(await readFile(graph));
  // Weights of a large encoder live beside the graph as ONNX external data (encoder.onnx.data): they count too.
  const graphName = basename(graph);
  for (const f of (await readdir(dirname(graph))).filter((n) => n.startsWith(`${graphName}.`)).sort()) {
    hash.update(await readFile(join(dirname(graph), f)));
  }
  hash.update(await readFile(tokenizer));
  const { pooling, maxTokens, clsTokenId, padTokenId } = m.encoder;
  hash.update(JSON.stringify({ pooling, maxTokens, clsTokenId, padTokenId, chunking: m.prompt.chunking }));
  return `enc-${hash.digest('hex').slice(0, 32)}`;
}

/** The package's encoder graph for ENCODER_PRECISION; int8 on a package without one is a configuration error. */
export function encoderGraphFor(
  pkg: Pick<ModelPackage, 'files' | 'encoderId' | 'encoderInt8Id'>,
  settings: Partial<Pick<Config, 'encoderPrecision'>>,
): { path: string; encoderId: string } {
  if ((settings.encoderPrecision ?? 'f32') === 'f32') return { path: pkg.files.encoder, encoderId: pkg.encoderId };
  if (!pkg.files.encoderInt8 || !pkg.encoderInt8Id) {
    throw new AppError('CONFIG_INVALID', 'ENCODER_PRECISION=int8 needs a model package with an int8 encoder (manifest encoder.int8Onnx); this one has none');
  }
  return { path: pkg.files.encoderInt8, encoderId: pkg.encoderInt8Id };
}

/**
 * The encoder identity soft prompts are stored under for the configured encoder backend: the package's own encoder
 * (its digest, above), or the embedding model text-embeddings-inference serves (ENCODER_ENGINE_MODEL_ID, its
 * model_id@model_sha). Every process that reads or writes soft prompts computes it the same way, so a switch of
 * backend never mixes vectors of two models under one key.
 */
export function encoderIdFor(
  pkg: Pick<ModelPackage, 'files' | 'encoderId' | 'encoderInt8Id'>,
  settings: Partial<Pick<Config, 'encoderBackend' | 'encoderEngineModelId' | 'encoderPrecision'>>,
): string {
  if ((settings.encoderBackend ?? 'onnx') === 'onnx') return encoderGraphFor(pkg, settings).encoderId;
  if (!settings.encoderEngineModelId) throw new AppError('CONFIG_INVALID', 'ENCODER_ENGINE_MODEL_ID is required when ENCODER_BACKEND=tei');
  // The request options that change a vector are part of the identity: raw (not normalized) pooled vectors.
  const hash = createHash('sha256').update(JSON.stringify({ backend: 'tei', model: settings.encoderEngineModelId, normalize: false }));
  return `enc-tei-${hash.digest('hex').slice(0, 32)}`;
}
