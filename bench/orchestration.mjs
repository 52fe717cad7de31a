// Orchestration ceiling: the repo's flow shape (a decode-job parent over encode-chunks children, built from the
// contracts with the pipeline's job options) through BullMQ on the machine's Redis, with no-op processors.
// Usage: node bench/orchestration.mjs JSON({flows, children, concurrency, redisUrl, prefix}). Prints one JSON line.
import { FlowProducer, Queue, Worker } from 'bullmq';
import { bullPrefix, createRedis, jobOptions } from '@lib/job-store';
import { DecodeJob, EncodeChunks, QueueName } from '@lib/shared';

const args = JSON.parse(process.argv[2]);
const connection = createRedis(args.redisUrl);
const prefix = bullPrefix(args.prefix);
const opts = { connection, prefix };
const flow = new FlowProducer(opts);

function flowOf(f) {
  const id = `bench${f}`;
  const children = Array.from({ length: args.children }, (_, batch) => {
    const data = EncodeChunks.payload.parse({ v: 1, owner: { kind: 'job', id }, tenant: 'bench', sourceKey: `sources/${id}`, batch, chunks: [{ i: batch, start: 0, end: 512, tokens: 128 }] });
    return { name: EncodeChunks.name, queueName: EncodeChunks.queue, data, opts: { ...jobOptions(EncodeChunks, data), failParentOnFailure: true } };
  });
  const data = DecodeJob.payload.parse({ v: 1, jobId: id, tenant: 'bench' });
  return { name: DecodeJob.name, queueName: DecodeJob.queue, data, opts: jobOptions(DecodeJob, data), children };
}

let parentsDone = 0;
let childrenDone = 0;
let resolveAll;
const allDone = new Promise((r) => (resolveAll = r));
const workerOpts = { connection: createRedis(args.redisUrl), prefix, concurrency: args.concurrency, autorun: false };
const encode = new Worker(QueueName.Encode, async (job) => {
  const p = EncodeChunks.payload.parse(job.data);
  childrenDone++;
  return EncodeChunks.result.parse({ batch: p.batch, keys: [`k${p.batch}`], refs: [p.chunks[0].i], spans: [[0, 512]], encoded: 1, cached: 0, encoderTokens: 128, encodeMs: 0 });
}, workerOpts);
const decode = new Worker(QueueName.Decode, async (job) => {
  DecodeJob.payload.parse(job.data);
  await job.getChildrenValues();
  if (++parentsDone === args.flows) resolveAll();
  return { resultKey: 'r' };
}, { ...workerOpts, connection: createRedis(args.redisUrl) });

const t0 = performance.now();
void encode.run();
void decode.run();
// Producers submit concurrently, as many API requests would.
const submit = [];
for (let f = 0; f < args.flows; f += 50) {
  submit.push(Promise.all(Array.from({ length: Math.min(50, args.flows - f) }, (_, i) => flow.add(flowOf(f + i)))));
}
await Promise.all(submit);
const submittedMs = performance.now() - t0;
await allDone;
const ms = performance.now() - t0;
await Promise.all([encode.close(), decode.close(), flow.close()]);
for (const name of [QueueName.Encode, QueueName.Decode]) {
  const q = new Queue(name, opts);
  await q.obliterate({ force: true });
  await q.close();
}
await connection.quit();
process.stdout.write(`${JSON.stringify({ flows: args.flows, children: args.children, concurrency: args.concurrency, ms, submittedMs, childJobs: childrenDone, flowsPerS: args.flows / (ms / 1000), childJobsPerS: childrenDone / (ms / 1000) })}\n`);
process.exit(0);
