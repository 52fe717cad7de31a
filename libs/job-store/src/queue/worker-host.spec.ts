import { UnrecoverableError } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { AppError, DecodeJob, DeliverWebhook, EncodeChunks, IndexDocument, QueueName } from '@lib/shared';
import { describeFailure, FinalStepError, toBullError } from './pipeline.js';
import { checkHandlers, handle } from './worker-host.js';

const noop = async () => ({}) as never;

describe('checkHandlers (boot-time)', () => {
  it('takes exactly one handler per job definition of the queue', () => {
    const ok = checkHandlers(QueueName.Decode, [handle(DecodeJob, noop), handle(IndexDocument, noop)]);
    expect([...ok.keys()].sort()).toEqual(['decode-job', 'index-document']);
    expect([...checkHandlers(QueueName.Encode, [handle(EncodeChunks, noop)]).keys()]).toEqual(['encode-chunks']);
  });

  it('refuses a missing handler, a second one and one from another queue', () => {
    const err = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e as AppError;
      }
      throw new Error('no error');
    };
    const missing = err(() => checkHandlers(QueueName.Decode, [handle(DecodeJob, noop)]));
    expect(missing.code).toBe('CONFIG_INVALID');
    expect(missing.message).toContain('index-document has no handler');
    const twice = err(() => checkHandlers(QueueName.Decode, [handle(DecodeJob, noop), handle(DecodeJob, noop), handle(IndexDocument, noop)]));
    expect(twice.message).toContain('decode-job has two handlers');
    const foreign = err(() => checkHandlers(QueueName.Webhook, [handle(DeliverWebhook, noop), handle(EncodeChunks, noop)]));
    expect(foreign.message).toContain('encode-chunks belongs to queue encode');
  });

  it('parses the payload with the definition before the step runs', async () => {
    const seen: unknown[] = [];
    const h = handle(DecodeJob, async (data) => {
      seen.push(data);
      return { resultKey: 'k' };
    });
    const log = { info() {}, warn() {} } as never;
    await expect(h.run({ data: { v: 1, jobId: 'job_1', tenant: 't' } } as never, log)).resolves.toEqual({ resultKey: 'k' });
    expect(seen).toEqual([{ v: 1, jobId: 'job_1', tenant: 't' }]);
    await expect(h.run({ data: { v: 2 } } as never, log)).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });
});

describe('failures across the queue edge', () => {
  it('carries a final failure as a value, never as text to parse', () => {
    const bull = toBullError(new AppError('NOT_FOUND', 'job x: no longer exists'));
    expect(bull).toBeInstanceOf(FinalStepError);
    expect(bull).toBeInstanceOf(UnrecoverableError); // what BullMQ reads to stop retrying
    expect(describeFailure(bull, 0, 5)).toEqual({ error: { code: 'NOT_FOUND', message: 'job x: no longer exists' }, final: true });
  });

  it('retries retryable errors until attempts run out; anything else is INTERNAL', () => {
    const retry = new AppError('STORAGE_UNAVAILABLE', 'S3 is down');
    expect(toBullError(retry)).toBe(retry);
    expect(describeFailure(retry, 0, 3).final).toBe(false);
    expect(describeFailure(retry, 2, 3).final).toBe(true);
    expect(describeFailure(new Error('boom'), 0, 1)).toEqual({ error: { code: 'INTERNAL', message: 'boom' }, final: true });
    // A message that looks like "CODE: text" is not read as a code.
    expect(describeFailure(new UnrecoverableError('NOT_FOUND: gone'), 0, 3)).toEqual({ error: { code: 'INTERNAL', message: 'NOT_FOUND: gone' }, final: true });
  });
});
