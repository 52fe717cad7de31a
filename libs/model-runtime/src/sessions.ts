import * as ort from 'onnxruntime-node';
import { AppError, type Config } from '@lib/shared';

export type SessionSettings = Pick<Config, 'executionProviders' | 'intraOpThreads' | 'graphOptimization'>;

/** One onnxruntime session, its inputs and outputs checked against the names the contract expects. */
export async function openSession(
  path: string,
  role: string,
  expected: { inputs: readonly string[]; outputs: readonly string[] },
  settings: SessionSettings,
): Promise<ort.InferenceSession> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, {
      executionProviders: [...settings.executionProviders],
      graphOptimizationLevel: settings.graphOptimization,
      ...(settings.intraOpThreads > 0 ? { intraOpNumThreads: settings.intraOpThreads } : {}),
    });
  } catch (err) {
    const message = (err as Error).message;
    if (settings.executionProviders.includes('cuda') && /cuda|provider/i.test(message)) {
      throw new AppError('CONFIG_INVALID', `the CUDA execution provider is not available for ${role}: ${message}`);
    }
    throw new AppError('MODEL_INVALID', `cannot load ${role} graph ${path}: ${message}`);
  }
  const diff = (want: readonly string[], have: readonly string[]) => ({
    missing: want.filter((n) => !have.includes(n)),
    extra: have.filter((n) => !want.includes(n)),
  });
  const inputs = diff(expected.inputs, session.inputNames);
  const outputs = diff(expected.outputs, session.outputNames);
  const problems = [
    ...inputs.missing.map((n) => `missing input ${n}`),
    ...inputs.extra.map((n) => `unexpected input ${n}`),
    ...outputs.missing.map((n) => `missing output ${n}`),
  ];
  if (problems.length > 0) {
    await session.release();
    throw new AppError('MODEL_MISMATCH', `${role} graph does not match the manifest: ${problems.join(', ')}`);
  }
  return session;
}

/** Throws MODEL_MISMATCH when a tensor's dims are not what the manifest declares. */
export function expectDims(role: string, name: string, tensor: ort.Tensor | undefined, dims: readonly number[]): ort.Tensor {
  if (!tensor || tensor.dims.length !== dims.length || tensor.dims.some((d, i) => d !== dims[i])) {
    throw new AppError(
      'MODEL_MISMATCH',
      `${role} output ${name} has dims [${tensor?.dims.join(', ') ?? 'none'}]; the manifest implies [${dims.join(', ')}]`,
    );
  }
  return tensor;
}

export function int64Tensor(values: ArrayLike<number>, dims: number[]): ort.Tensor {
  const data = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i]!);
  return new ort.Tensor('int64', data, dims);
}

export async function run(
  session: ort.InferenceSession,
  role: string,
  feeds: Record<string, ort.Tensor>,
): Promise<ort.InferenceSession.ReturnType> {
  try {
    return await session.run(feeds);
  } catch (err) {
    throw new AppError('INFERENCE_FAILED', `${role} inference failed: ${(err as Error).message}`, undefined, { cause: err });
  }
}
