import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import type { Logger } from 'pino';
import { mapLimit, type BlobStore } from '@lib/blob-store';
import { ID_PATTERN, type JobStore, type Pipeline } from '@lib/job-store';
import { AppError, IndexDocument, QueueName, chunkIdsKey, documentChunksKey, resultKey, softPromptTenantPrefix, type Config, type DocumentRecord, type JobRecord } from '@lib/shared';
import { BLOBS, CONFIG, LOGGER, PIPELINE, STORE } from '../tokens.js';

/** Tenant names as API_KEYS and the storage keys accept them. */
const TENANT = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;

/**
 * Deleting data, on request (DELETE /v1/jobs/:id, DELETE /v1/documents/:id), when its retention ends, and for a whole
 * tenant (the admin purge). A delete removes the records, indexes and soft-prompt references in one Redis step (the
 * job store's DELETE_OWNER), then the blobs that step handed back: the result, the source, the chunk references and
 * the soft prompts no other job or document of the tenant references. Those blobs stay in a pending set until they
 * are gone, so a blob store that fails mid-delete leaves nothing behind: the sweep (every RETENTION_SWEEP_SECONDS)
 * deletes them later.
 */
@Injectable()
export class LifecycleService implements OnModuleInit, OnModuleDestroy {
  private timer?: NodeJS.Timeout;
  private sweeping?: Promise<void>;

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    @Inject(BLOBS) private readonly blobs: BlobStore,
    @Inject(STORE) private readonly store: JobStore,
    @Inject(PIPELINE) private readonly pipeline: Pipeline,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.sweep(), this.config.retentionSweepSeconds * 1000);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearInterval(this.timer);
    await this.sweeping;
  }

  /** DELETE /v1/jobs/:id. An unfinished job is cancelled first, so no step of it runs on, then deleted. */
  async deleteJob(tenant: string, id: string): Promise<void> {
    const job = ID_PATTERN.test(id) && id.startsWith('job_') ? await this.store.getJob(id) : null;
    if (!job || job.tenant !== tenant) throw new AppError('NOT_FOUND', `no job ${JSON.stringify(id.slice(0, 64))}`);
    await this.removeJob(job);
  }

  /** DELETE /v1/documents/:id: the document and every job asked on it (their results quote it). Returns those jobs. */
  async deleteDocument(tenant: string, id: string): Promise<string[]> {
    const doc = ID_PATTERN.test(id) && id.startsWith('doc_') ? await this.store.getDocument(id) : null;
    if (!doc || doc.tenant !== tenant) throw new AppError('NOT_FOUND', `no document ${JSON.stringify(id.slice(0, 64))}`);
    return (await this.removeDocument(doc)).jobs;
  }

  /** The admin purge: every job, document and soft prompt of a tenant, and its idempotency keys. */
  async purgeTenant(tenant: string): Promise<{ jobs: number; documents: number; blobs: number }> {
    if (!TENANT.test(tenant)) throw new AppError('INPUT_INVALID', `invalid tenant: must match ${TENANT.source}`);
    let blobs = 0;
    let jobs = 0;
    let documents = 0;
    for (const id of await this.store.allIds('doc', tenant)) {
      const doc = await this.store.getDocument(id);
      if (doc?.tenant !== tenant) continue;
      const removed = await this.removeDocument(doc);
      documents++;
      jobs += removed.jobs.length;
      blobs += removed.blobs;
    }
    for (const id of await this.store.allIds('job', tenant)) {
      const job = await this.store.getJob(id);
      if (job?.tenant !== tenant) continue;
      blobs += await this.removeJob(job);
      jobs++;
    }
    // Soft prompts no count knows of (written by a step whose job was deleted under it, or counted by records Redis
    // expired) are found by listing the tenant's folder: after the deletes above, nothing there is still wanted.
    const left = await this.blobs.list(softPromptTenantPrefix(tenant));
    await mapLimit(left, this.config.blobFetchConcurrency, (key) => this.blobs.delete(key));
    await this.store.purgeTenantKeys(tenant);
    this.logger.info({ tenant, jobs, documents, blobs: blobs + left.length }, 'tenant purged');
    return { jobs, documents, blobs: blobs + left.length };
  }

  /**
   * One pass of the retention sweep: deletes the jobs and documents whose retention has ended, then retries pending
   * blob deletions. Runs every RETENTION_SWEEP_SECONDS in each API process; two processes deleting the same id is
   * harmless (the second finds nothing to release). Concurrent calls share one pass.
   */
  sweep(): Promise<void> {
    return (this.sweeping ??= this.sweepOnce()
      .catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'retention sweep failed; retried next time'))
      .finally(() => {
        this.sweeping = undefined;
      }));
  }

  private async sweepOnce(): Promise<void> {
    for (;;) {
      const due = await this.store.dueForDeletion(Date.now(), 100);
      for (const id of due) {
        if (id.startsWith('job_')) {
          const job = await this.store.getJob(id);
          if (job) await this.removeJob(job);
          else await this.store.dropRetention(id);
        } else {
          const doc = await this.store.getDocument(id);
          if (!doc) await this.store.dropRetention(id);
          else if (await this.hasUnfinishedJobs(doc)) await this.store.postponeDeletion(id, Date.now() + this.config.retentionSeconds * 1000);
          else await this.removeDocument(doc);
        }
      }
      if (due.length < 100) break;
    }
    for (;;) {
      const pending = await this.store.pendingBlobDeletions(200);
      if ((await this.deleteBlobs(pending)) < pending.length || pending.length < 200) break;
    }
  }

  private async hasUnfinishedJobs(doc: DocumentRecord): Promise<boolean> {
    for (const id of await this.store.jobsOfDocument(doc.id)) {
      const job = await this.store.getJob(id);
      if (job && !this.store.isTerminal(job.status)) return true;
    }
    return false;
  }

  /** Cancels (if it has not ended), deletes the records, then the blobs. Returns the blobs deleted. */
  private async removeJob(job: JobRecord): Promise<number> {
    // Cancel first: the flow still waiting is removed, and a running step stops (the decoder polls the status; an
    // encode step finds its job gone and writes nothing more). The delete never waits for a step to end, so it
    // cannot hang on one; what a step still writes afterwards is removed (see the encoder and decoder).
    if (!this.store.isTerminal(job.status)) await this.pipeline.cancel(job.id);
    const own = [resultKey(job.id), ...(job.documentId === null ? [job.sourceKey, chunkIdsKey(job.id)] : [])];
    const keys = await this.store.deleteJobRecords(job, own);
    this.logger.info({ jobId: job.id, tenant: job.tenant, blobs: keys.length }, 'job deleted');
    return this.deleteBlobs(keys);
  }

  private async removeDocument(doc: DocumentRecord): Promise<{ jobs: string[]; blobs: number }> {
    const jobs: string[] = [];
    let blobs = 0;
    for (const id of await this.store.jobsOfDocument(doc.id)) {
      const job = await this.store.getJob(id);
      if (job?.tenant !== doc.tenant) continue;
      blobs += await this.removeJob(job);
      jobs.push(id);
    }
    if (doc.status === 'encoding') {
      // Its encode flow: the waiting steps go; a running one finds the document gone and stops.
      await this.pipeline.queues[QueueName.Decode].remove(IndexDocument.jobId({ v: 1, documentId: doc.id, tenant: doc.tenant }), { removeChildren: true }).catch(() => 0);
    }
    // Batches on the document go with it: their result lines quote it (their jobs were deleted above).
    await this.pipeline.batches.deleteForDocument(doc.id);
    const keys = await this.store.deleteDocumentRecords(doc, [doc.sourceKey, documentChunksKey(doc.id), chunkIdsKey(doc.id)]);
    this.logger.info({ documentId: doc.id, tenant: doc.tenant, jobs: jobs.length, blobs: keys.length }, 'document deleted');
    return { jobs, blobs: blobs + (await this.deleteBlobs(keys)) };
  }

  /**
   * Deletes pending blobs and confirms them; a soft prompt referenced again meanwhile (a new job reuses the chunk) is
   * kept. A store failure leaves the rest pending for the next sweep. Returns how many were settled.
   */
  private async deleteBlobs(keys: readonly string[]): Promise<number> {
    const done: string[] = [];
    let failed: unknown;
    // Each key on its own: one failure must neither stop the others nor leave deletes running after this returns.
    await mapLimit(keys, this.config.blobFetchConcurrency, async (key) => {
      try {
        if (!(await this.store.referencedAgain(key))) await this.blobs.delete(key);
        done.push(key);
      } catch (err) {
        failed ??= err;
      }
    });
    if (failed !== undefined) this.logger.warn({ err: (failed as Error).message, pending: keys.length - done.length }, 'blob deletion failed; the retention sweep retries it');
    await this.store.blobsDeleted(done);
    return done.length;
  }
}
