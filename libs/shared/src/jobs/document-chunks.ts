import { z } from 'zod';
import { ChunkRef } from './pipeline.jobs.js';

/**
 * A stored document's chunk references, written by the API beside the source when the document is created (key:
 * `documentChunksKey`). Jobs on the document reuse them instead of reading the whole source and cutting it again,
 * which was most of a re-ask's time in the API. The cut depends only on the text and the model's chunking settings,
 * and both are fixed for a document, so the references never go stale.
 */
export const DocumentChunks = z.object({
  /** 2: chunks cut by the encoder's tokens, exactly as encoded (1, no longer written: cut by characters). */
  v: z.literal(2),
  /** sha256 (hex) of the source text: what an idempotency fingerprint hashes, without reading the source. */
  sourceSha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** Length of the source text in UTF-16 code units. */
  chars: z.number().int().nonnegative(),
  /** Number of chunks: the document's soft tokens. */
  chunks: z.number().int().nonnegative(),
  /** The encode children's chunk references, as the document was encoded. */
  batches: z.array(z.array(ChunkRef).min(1)),
});
export type DocumentChunks = z.infer<typeof DocumentChunks>;
