import { z } from 'zod';
import { GenerationParams, Metadata, Task, WebhookSpec } from '@lib/shared';

/** Fields of a job request besides the document. Unknown fields are refused, so a typo never passes silently. */
export const JobOptions = z
  .object({
    task: Task,
    generation: GenerationParams.partial().strict().optional(),
    webhook: WebhookSpec.strict().optional(),
    metadata: Metadata.optional(),
  })
  .strict();

/** POST /v1/jobs with a JSON body. */
export const CreateJobJson = JobOptions.extend({ text: z.string() }).strict();

/** POST /v1/documents with a JSON body. */
export const CreateDocumentJson = z.object({ text: z.string(), metadata: Metadata.optional() }).strict();

export const ListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    after: z.string().max(200).optional(),
  })
  .strict();
