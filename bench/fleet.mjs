// The fleet on paper (docs/benchmarks.md, section 6): how many encoder and decoder GPUs one Redis and one S3 bucket
// can feed, from what this bench measured (the queue layer's ceiling, the job's shape, our encoder's speed) and a few
// published figures, each cited where it is used. Estimates, not measurements, wherever a GPU is involved: this
// machine has none.

const num = (x, d = 0) => (x == null || !Number.isFinite(x) ? '—' : x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));

/** Published capacities used below. */
export const PUBLISHED = {
  // Amazon S3 User Guide, "Best practices design patterns: optimizing Amazon S3 performance"
  // (https://docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html): at least 3,500
  // PUT/COPY/POST/DELETE and 5,500 GET/HEAD requests per second per partitioned prefix.
  s3PutPerPrefix: 3500,
  s3GetPerPrefix: 5500,
  // NVIDIA A100 datasheet: 312 TFLOPS dense FP16/BF16 Tensor Core.
  a100Flops: 312e12,
  // gte-large-en-v1.5: 434M parameters; about 2 FLOPs a parameter a token in its MatMuls.
  gteLargeParams: 434e6,
  // The share of the peak a BERT-large-sized encoder reaches in practice (TEI, flash attention, f16): an assumption;
  // docs/models.md brackets gte-large on an A100 between 2 and 6 s for 2,000 chunks of 120 tokens (13-40%).
  gteUtilisation: 0.3,
};

/**
 * The fleet arithmetic. `shape`: chunks, children and encoder tokens of one job; `orch`: section 6's 16-children run;
 * `ours`: our encoder's tokens/s (section 2, default setting) and our decoder's seconds per job (section 3);
 * `load`: the 200-job load run (Redis commands and memory per job), when there is one; `redisOpsPerS`: what
 * `redis-benchmark` measured.
 */
export function fleetLines({ shape, orch, ours, load, redisOpsPerS }) {
  const L = [];
  const gteTokensPerS = (PUBLISHED.a100Flops * PUBLISHED.gteUtilisation) / (2 * PUBLISHED.gteLargeParams);
  const { chunks, children, encoderTokens, label } = shape;
  // Requests one cold job makes to the blob store (from the pipeline's code, not measured): the API writes the source;
  // the encoder writes one soft prompt a chunk and reads the source once a worker holding a child; the decoder reads
  // one soft prompt a chunk (none when they are in its memory), the source once (chunk texts) and writes the result.
  // Existence checks cost none: they are one Redis round trip a child (JobStore.storedSoftPrompts).
  const puts = chunks + 2;
  const gets = chunks + children + 1;
  const rows = [];
  // The queue layer: flows and child jobs per second through BullMQ on one Redis, no-op processors.
  const redisJobsPerS = orch ? Math.min(orch.flowsPerS, orch.childJobsPerS / (children + 1)) : NaN;
  rows.push(['Redis + BullMQ (one instance)', orch ? `${num(orch.childJobsPerS)} child jobs/s, ${num(orch.flowsPerS, 1)} flows/s (measured above; producers, workers and Redis on this machine's cores)` : 'not measured', `1 flow, ${children} children`, redisJobsPerS]);
  rows.push(['S3 writes (one partitioned prefix: a tenant\'s soft prompts)', `${num(PUBLISHED.s3PutPerPrefix)} PUT/s (AWS S3 User Guide)`, `${num(puts)} PUTs`, PUBLISHED.s3PutPerPrefix / puts]);
  rows.push(['S3 reads (one partitioned prefix)', `${num(PUBLISHED.s3GetPerPrefix)} GET/s (AWS S3 User Guide)`, `${num(gets)} GETs at most`, PUBLISHED.s3GetPerPrefix / gets]);
  rows.push(['encoder GPU, gte-large-en-v1.5 on an A100 (estimate)', `${num(gteTokensPerS)} tokens/s: 312 TFLOPS (NVIDIA datasheet) x ${Math.round(PUBLISHED.gteUtilisation * 100)}% / (2 x 434M FLOPs a token)`, `${num(encoderTokens)} encoder tokens`, gteTokensPerS / encoderTokens]);
  if (ours?.encoderTokensPerS) rows.push(['encoder, this model on this CPU (measured)', `${num(ours.encoderTokensPerS)} tokens/s (section 2, default setting)`, `${num(encoderTokens)} encoder tokens`, ours.encoderTokensPerS / encoderTokens]);
  if (ours?.decoderSecondsPerJob) rows.push(['decoder, this model on this CPU (measured)', `${num(ours.decoderSecondsPerJob * 1000)} ms a job: prefill of ${num(chunks)} soft tokens and 16 greedy steps (section 3)`, '1 prefill, 16 steps', 1 / ours.decoderSecondsPerJob]);
  // docs/models.md's estimate for a 7B decoder on an A100: decode 15-30 ms a token unbatched, prefill ~0.1 s for 2,000
  // positions: a job of 64 new tokens is about 1-2 s of one GPU without batching, many times less with it.
  rows.push(['decoder GPU, a 7B decoder on an A100 (estimate, unbatched)', 'prefill ~50 ms for a few hundred positions, decode ~20 ms a token (docs/models.md)', '1 prefill, 64 new tokens', 1 / (0.05 + 64 * 0.02)]);
  L.push(`Per ${label} job (${num(chunks)} chunks, ${children} encode children, ${num(encoderTokens)} encoder tokens), what each shared part and each GPU sustains:`, '');
  L.push('| part | capacity (source) | one job needs | jobs/s |', '|---|---|---|---|');
  for (const [part, cap, need, jobs] of rows) L.push(`| ${part} | ${cap} | ${need} | ${num(jobs, jobs < 10 ? 2 : 0)} |`);
  L.push('');
  const encGpu = gteTokensPerS / encoderTokens;
  const decGpu = 1 / (0.05 + 64 * 0.02);
  // The shared parts, smallest first: the first one a growing fleet of encoder GPUs saturates.
  const shared = [
    ['the queue layer (BullMQ on one Redis)', redisJobsPerS],
    ["S3 writes to one tenant's prefix", PUBLISHED.s3PutPerPrefix / puts],
    ["S3 reads from one tenant's prefix", PUBLISHED.s3GetPerPrefix / gets],
  ];
  if (load?.redisCommandsPerJob && redisOpsPerS) shared.push(['Redis commands', redisOpsPerS / load.redisCommandsPerJob]);
  shared.sort((a, b) => (Number.isFinite(a[1]) ? a[1] : Infinity) - (Number.isFinite(b[1]) ? b[1] : Infinity));
  L.push(
    `As the fleet grows, ${shared.map(([n, j]) => `${n} at ${num(j, 1)} jobs/s (${num(j / encGpu, 0)} gte-large encoder GPUs, ${num(j / decGpu, 0)} unbatched 7B decoder GPUs)`).join(', then ')}. ` +
      `The S3 limits hold per partitioned prefix: a tenant's soft prompts share one prefix, which S3 partitions further under sustained load, and many tenants spread over many prefixes from the start; cached chunks cost no PUT and, read from the decoder's memory, no GET. ` +
      `The decoder window bounds one job, not the fleet (${num(chunks)} of its soft tokens here).`,
    '',
  );
  if (load?.redisCommandsPerJob) {
    const perJob = `${num(load.redisCommandsPerJob)} commands${load.redisBytesPerJob ? ` and ${num(load.redisBytesPerJob / 1024)} KiB of memory` : ''}`;
    const carried = redisOpsPerS ? `; at the ${num(redisOpsPerS)} commands/s \`redis-benchmark\` measured here (SET and GET, one connection per client, no pipelining) one Redis carries ${num(redisOpsPerS / load.redisCommandsPerJob, 1)} jobs/s` : '';
    L.push(`Redis per job, measured in the load run (section 9): ${perJob}${carried}.`, '');
  }
  return L;
}
