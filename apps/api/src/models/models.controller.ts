import { Controller, Get, Inject, UseGuards } from '@nestjs/common';
// The package reader alone: the API never loads onnxruntime.
import { encoderIdFor, loadModelPackage, type ModelPackage } from '@lib/model-runtime/package';
import { TaskType, type Config, type ModelList, type ModelManifest } from '@lib/shared';
import { TenantGuard } from '../auth/tenant.guard.js';
import { CONFIG, MODEL_INFO } from '../tokens.js';

/**
 * GET /v1/models: the model package this deployment serves (one), with what a client needs to know before asking:
 * its version, the encoder id its soft prompts are stored under, the window, and the languages it was trained on.
 */
@Controller('v1/models')
@UseGuards(TenantGuard)
export class ModelsController {
  // The encoder id digests the encoder's weights: computed once, on first request, not at every start.
  private pkg: Promise<ModelPackage> | undefined;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(MODEL_INFO) private readonly manifest: ModelManifest,
  ) {}

  @Get()
  async list(): Promise<ModelList> {
    this.pkg ??= loadModelPackage(this.config.modelPath).catch((err: unknown) => {
      this.pkg = undefined; // a transient read error is not remembered
      throw err;
    });
    const pkg = await this.pkg;
    const m = pkg.manifest;
    // The identity the workers store soft prompts under: the package's encoder, or the model TEI serves.
    const encoderId = encoderIdFor(pkg, this.config);
    return {
      object: 'list',
      data: [
        {
          object: 'model',
          id: m.name,
          version: m.version,
          encoderId,
          window: m.decoder.window,
          chunkChars: m.prompt.chunking.chunkChars,
          languages: m.languages ?? [],
          tasks: TaskType.options.filter((t) => m.prompt.templates[t] !== undefined),
        },
      ],
    };
  }
}
