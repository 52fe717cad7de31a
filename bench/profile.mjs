// node bench/profile.mjs: one 128k-token pipeline job, stage by stage. Starts `e2llm serve` (LOG_LEVEL=info) and
// reads its job logs (pino, millisecond timestamps) into a timeline: API request handling, chunking, flow creation,
// worker pickup, each encode child (chunking, existence checks, inference, blob writes), the decoder's gather and
// reads, prefill, decode, result store. Runs a cold job, the same document again (every chunk cached), and a stored
// document asked twice. Writes docs/benchmarks/profile.json, which docs/benchmarks.md's Profile section shows (run
// `npm run bench` or `BENCH_ONLY=... npm run bench` after it to render). Knobs: BENCH_TOKENS_K (default 128).
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { TextTokenizer, loadModelPackage } from '@lib/model-runtime';
import { loadConfig } from '@lib/shared';
import { buildCorpus, cutToTokens } from './corpus.mjs';
import { jobEnd } from './job-events.mjs';
import { dropRedisKeys, untilReady } from './serve.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const started = Date.now();
const config = loadConfig(process.env);
const tokens = Number(process.env.BENCH_TOKENS_K ?? 128) * 1024;
const pkg = await loadModelPackage(resolve(root, config.modelPath));
const { text } = cutToTokens(buildCorpus(root, tokens * 4.6), tokens, await TextTokenizer.load(pkg.files.decoderTokenizer));
const work = mkdtempSync(join(tmpdir(), 'e2llm-profile-'));
const port = 19000 + (process.pid % 1000);
const base = `http://127.0.0.1:${port}`;
const prefix = `e2llm-profile-${process.pid}`;
const env = { ...process.env, PORT: String(port), HOST: '127.0.0.1', REDIS_PREFIX: prefix, DATA_DIR: join(work, 'data'), BLOB_STORE: 'local', LOG_LEVEL: 'info', API_KEYS: 'jobs:profile-key-jobs-0123456789,docs:profile-key-docs-0123456789' };
// Two tenants: soft prompts are cached per tenant, so the stored document's encoding and first question are cold.
let auth = 'Bearer profile-key-jobs-0123456789';
// BENCH_SPLIT_ROLES=1: the API and each worker in a process of its own (as deployed), instead of `e2llm serve`.
const roles = process.env.BENCH_SPLIT_ROLES === '1' ? ['encoder-worker', 'decoder-worker', 'api'] : ['serve'];
const servers = roles.map((role) => spawn(process.execPath, [join(root, 'apps/cli/bin/e2llm.js'), role], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] }));
const logs = [];
for (const s of servers.flatMap((x) => [x.stdout, x.stderr])) {
  createInterface({ input: s }).on('line', (l) => {
    try {
      logs.push(JSON.parse(l));
    } catch {
      /* not JSON */
    }
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const http = async (method, path, body) => {
  const res = await fetch(base + path, { method, headers: { authorization: auth, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : undefined });
  const json = await res.json();
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
};
const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/** One job, POST to its terminal event, with the stages read from the server's job logs. */
async function profile(label, path, body) {
  const from = logs.length;
  const t0 = Date.now();
  const j = await http('POST', path, body);
  const posted = Date.now();
  const done = await jobEnd(base, j.id, auth);
  const t1 = Date.now();
  await sleep(100);
  const mine = logs.slice(from).filter((l) => String(l.jobId ?? '').startsWith(j.id));
  const enc = mine.filter((l) => l.jobName === 'encode-chunks');
  const started = enc.filter((l) => l.msg === 'job started');
  const encoded = enc.filter((l) => l.msg === 'encoded');
  const encDone = enc.filter((l) => l.msg === 'job done');
  const dec = mine.filter((l) => l.jobName === 'decode-job');
  const decStart = dec.find((l) => l.msg === 'job started');
  const decoded = dec.find((l) => l.msg === 'decoded');
  const decDone = dec.find((l) => l.msg === 'job done');
  const f = (k) => sum(encoded.map((l) => l[k] ?? 0));
  const firstStart = Math.min(...started.map((l) => l.time));
  const lastDone = Math.max(...encDone.map((l) => l.time));
  const t = done.result.timings;
  const stages = {
    totalMs: t1 - t0,
    postMs: posted - t0,
    apiChunkMs: Math.round(t.chunkMs),
    toFirstChildMs: firstStart - posted,
    children: started.length,
    encodeSpanMs: lastDone - firstStart,
    childPrepMs: f('prepMs'),
    childExistsMs: f('existsMs'),
    childLaneWaitMs: f('laneWaitMs'),
    childInferenceMs: f('inferenceMs'),
    childUploadMs: f('uploadMs'),
    childJobsMs: sum(encDone.map((l) => l.ms)),
    toDecoderMs: decStart.time - lastDone,
    gatherMs: decoded.gatherMs,
    softPromptReadMs: decoded.downloadMs,
    adapterMs: decoded.adapterMs,
    prefillMs: decoded.prefillMs,
    decodeMs: decoded.decodeMs,
    resultStoreMs: decoded.storeMs,
    decoderJobMs: decDone.ms,
    toClientMs: t1 - decDone.time,
  };
  console.log(`${label}: ${JSON.stringify(stages)}`);
  return { label, ...stages };
}

try {
  await untilReady(base);
  const loadStart = loadavg().map((x) => +x.toFixed(2));
  const q = { type: 'qa', question: 'Which version of the licence may you choose?' };
  const generation = { maxNewTokens: 16 };
  await profile('warm-up (3000 characters)', '/v1/jobs', { text: text.slice(0, 3000), task: q, generation });
  rmSync(join(work, 'data/soft-prompts'), { recursive: true, force: true });
  const jobs = [];
  jobs.push(await profile('cold job', '/v1/jobs', { text, task: q, generation }));
  jobs.push(await profile('same text again, new job', '/v1/jobs', { text, task: q, generation }));
  auth = 'Bearer profile-key-docs-0123456789';
  const t0 = Date.now();
  const d = await http('POST', '/v1/documents', { text });
  for (;;) {
    const r = await http('GET', `/v1/documents/${d.id}`);
    if (r.status === 'ready') break;
    if (r.status === 'failed') throw new Error(JSON.stringify(r));
    await sleep(20);
  }
  const documentEncodeMs = Date.now() - t0;
  jobs.push(await profile('first question on a stored document', `/v1/documents/${d.id}/jobs`, { task: q, generation }));
  jobs.push(await profile('re-ask', `/v1/documents/${d.id}/jobs`, { task: { type: 'qa', question: 'Who holds the copyright?' }, generation }));
  const out = { startedAt: new Date(started).toISOString(), command: 'node bench/profile.mjs', tokens, chars: text.length, settings: { roles, encoderConcurrency: config.encoderConcurrency, softPromptCacheMb: config.softPromptCacheMb }, loadAvgStart: loadStart, loadAvgEnd: loadavg().map((x) => +x.toFixed(2)), documentEncodeMs, jobs };
  mkdirSync(join(root, 'docs/benchmarks'), { recursive: true });
  writeFileSync(join(root, process.env.BENCH_PROFILE_OUT ?? 'docs/benchmarks/profile.json'), `${JSON.stringify(out, null, 2)}\n`);
  console.log(`wrote docs/benchmarks/profile.json (load average ${out.loadAvgStart.join(', ')} to ${out.loadAvgEnd.join(', ')})`);
} finally {
  for (const server of servers) server.kill('SIGTERM');
  await Promise.all(servers.map((server) => new Promise((r) => server.once('close', r))));
  rmSync(work, { recursive: true, force: true });
  dropRedisKeys(prefix);
}
