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
})
  // What the schema alone cannot say, checked so that a damaged copy is never handed to the encoder as a valid plan:
  // every chunk 0..chunks-1 exactly once, each a non-empty range inside the text.
  .superRefine((refs, ctx) => {
    const total = refs.batches.reduce((n, b) => n + b.length, 0);
    if (total !== refs.chunks) return void ctx.addIssue({ code: 'custom', message: `${total} chunk references for ${refs.chunks} chunks`, path: ['chunks'] });
    const seen = new Uint8Array(total);
    for (const batch of refs.batches) {
      for (const r of batch) {
        if (r.i >= refs.chunks || seen[r.i]) return void ctx.addIssue({ code: 'custom', message: `chunk ${r.i} is out of range or repeated`, path: ['batches'] });
        seen[r.i] = 1;
        if (r.start >= r.end || r.end > refs.chars) return void ctx.addIssue({ code: 'custom', message: `chunk ${r.i} spans ${r.start}-${r.end}, outside the text`, path: ['batches'] });
      }
    }
  });
export type DocumentChunks = z.infer<typeof DocumentChunks>;
