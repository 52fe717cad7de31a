// npm run bench: every measurement in one run, written to docs/benchmarks.md (+ docs/benchmarks/*.svg, results.json).
// Each model measurement runs in a fresh `node` (bench/child.mjs) so its peak memory is its own; the parent watches
// memory and time and kills a case that passes its cap. Knobs (env): BENCH_FULL_LIMIT_S (per full-context case,
// default 180), BENCH_MEM_CAP_GIB (default: 60% of RAM, at most 12), BENCH_SIZES_K (default 4,8,16,32,64,128).
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { DocumentPlanner, PREFILL_BLOCK, TextTokenizer, loadModelPackage } from '@lib/model-runtime';
import { loadConfig } from '@lib/shared';
import { buildCorpus, cutToTokens } from './corpus.mjs';
import { renderReport } from './report.mjs';
import { jobEnd } from './job-events.mjs';
import { dropRedisKeys, rssMiB, untilReady } from './serve.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const env = process.env;
const config = loadConfig(env);
const FULL_LIMIT_S = Number(env.BENCH_FULL_LIMIT_S ?? 180);
const MEM_CAP_MIB = Math.round(Number(env.BENCH_MEM_CAP_GIB ?? Math.min(12, (totalmem() / 2 ** 30) * 0.6)) * 1024);
const SIZES = (env.BENCH_SIZES_K ?? '4,8,16,32,64,128').split(',').map((k) => Number(k) * 1024);
// The full-context baseline prefills in blocks of 1024 positions, not the runtime's PREFILL_BLOCK (512): at 32k-128k
// positions each block's call copies the whole KV cache (the graph concatenates past and new), so smaller blocks cost
// more there (64k: 68 s in blocks of 1024, 174 s in blocks of 512), while E2LLM's prompts stay within the window.
const FULL_CONTEXT_BLOCK = 1024;
const work = mkdtempSync(join(tmpdir(), 'e2llm-bench-'));
const started = Date.now();
const log = (...a) => console.error(`[bench ${((Date.now() - started) / 1000).toFixed(0)}s]`, ...a);

/** Runs a command, watching its resident memory; kills it past the memory cap or the time limit. */
function measure(cmd, args, { limitS = 600, capMiB = MEM_CAP_MIB, extraEnv = {} } = {}) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peakMiB = 0;
    let killed = null;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const watch = setInterval(() => {
      const rss = rssMiB(child.pid);
      peakMiB = Math.max(peakMiB, rss);
      if (rss > capMiB && !killed) {
        killed = 'out of memory';
        child.kill('SIGKILL');
      }
    }, 100);
    const timer = setTimeout(() => {
      if (!killed) {
        killed = 'out of time';
        child.kill('SIGKILL');
      }
    }, limitS * 1000);
    child.on('close', (code) => {
      clearInterval(watch);
      clearTimeout(timer);
      const wallMs = performance.now() - t0;
      if (killed) return resolve({ failed: killed, wallMs, peakMiB });
      if (code !== 0) return resolve({ failed: `exit ${code}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`, wallMs, peakMiB });
      try {
        resolve({ ...JSON.parse(stdout.trim().split('\n').pop()), wallMs, watchedPeakMiB: peakMiB });
      } catch {
        resolve({ failed: `no result: ${stdout.slice(-200)} ${stderr.slice(-300)}`, wallMs, peakMiB });
      }
    });
  });
}
const child = (kind, args, opts) => measure(process.execPath, [join(root, 'bench/child.mjs'), kind, JSON.stringify(args)], opts);

function machine() {
  const sh = (c, a) => {
    try {
      return execFileSync(c, a, { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  return {
    nproc: Number(sh('nproc', [])),
    cpu: cpus()[0]?.model ?? 'unknown',
    memGiB: +(totalmem() / 2 ** 30).toFixed(1),
    node: process.version,
    onnxruntime: require('onnxruntime-node/package.json').version,
    os: sh('uname', ['-sr']),
    redis: sh('redis-cli', ['info', 'server']).match(/redis_version:(\S+)/)?.[1] ?? 'unknown',
    loadAvgStart: loadavg().map((x) => +x.toFixed(2)),
    settings: { executionProviders: config.executionProviders, intraOpThreads: config.intraOpThreads, graphOptimization: config.graphOptimization, encoderMaxBatchTokens: config.encoderMaxBatchTokens, encoderMaxBatchSize: config.encoderMaxBatchSize, softPromptDtype: config.softPromptDtype },
  };
}

async function documents() {
  const pkg = await loadModelPackage(resolve(root, config.modelPath));
  const tok = await TextTokenizer.load(pkg.files.decoderTokenizer);
  const mf = pkg.manifest;
  results.model = { name: mf.name, version: mf.version, encoderWidth: mf.encoder.width, encoderMaxTokens: mf.encoder.maxTokens, decoderHidden: mf.decoder.hiddenSize, decoderLayers: mf.decoder.layers, decoderWindow: mf.decoder.window, chunkChars: mf.prompt.chunking.chunkChars };
  const corpus = buildCorpus(root, Math.max(...SIZES) * 4.6);
  const docs = {};
  for (const n of SIZES) {
    const { text, tokens } = cutToTokens(corpus, n, tok);
    const path = join(work, `doc-${n}.txt`);
    writeFileSync(path, text);
    docs[n] = { path, tokens, chars: text.length };
  }
  // The largest document the decoder window takes: as many chunks as fit with the prompt and 16 new tokens.
  const planner = await DocumentPlanner.load(resolve(root, config.modelPath));
  const target = mf.decoder.window - 64;
  const big = buildCorpus(root, target * mf.prompt.chunking.chunkChars * 1.1);
  const cut = planner.chunk(big, target);
  if (cut.length < target) throw new Error(`only ${cut.length} chunks of distinct offline text found; ${target} wanted`);
  const text = big.slice(0, cut[target - 1].end);
  const path = join(work, 'doc-limit.txt');
  writeFileSync(path, text);
  docs.limit = { path, tokens: tok.encode(text).length, chars: text.length, chunks: target };
  return docs;
}

// ---- 1. E2LLM against full context ----
async function contextScaling(docs) {
  const rows = [];
  let fullOver = null;
  for (const n of SIZES) {
    log(`ttft ${n / 1024}k: e2llm`);
    const e2llm = await child('e2llm', { doc: docs[n].path, reps: 3 });
    let full;
    if (fullOver) {
      full = { failed: fullOver.failed, skipped: `not run: ${fullOver.size / 1024}k already ran ${fullOver.failed}` };
    } else {
      log(`ttft ${n / 1024}k: full context (limit ${FULL_LIMIT_S}s, ${MEM_CAP_MIB} MiB)`);
      full = await child('full', { doc: docs[n].path, reps: n <= 8192 ? 3 : 1, block: FULL_CONTEXT_BLOCK }, { limitS: FULL_LIMIT_S });
      if (full.failed) fullOver = { failed: full.failed, size: n };
    }
    rows.push({ tokens: n, chars: docs[n].chars, e2llm, full });
  }
  // At the window's limit, E2LLM alone: full context stopped long before (see `fullOver`).
  log(`ttft at the window's limit (${docs.limit.chunks} chunks): e2llm`);
  const limit = { tokens: docs.limit.tokens, chars: docs.limit.chars, chunks: docs.limit.chunks, e2llm: await child('e2llm', { doc: docs.limit.path, reps: 1 }) };
  // Thread settings on both sides at 32k: one intra-op thread per session (see the encoder section).
  const n32 = SIZES.find((n) => n === 32768);
  let oneThread = null;
  if (n32) {
    const extraEnv = { INTRA_OP_THREADS: '1' };
    log('ttft 32k, INTRA_OP_THREADS=1: e2llm, full context');
    oneThread = {
      tokens: n32,
      e2llm: await child('e2llm', { doc: docs[n32].path, reps: 3 }, { extraEnv }),
      full: await child('full', { doc: docs[n32].path, reps: 1, block: FULL_CONTEXT_BLOCK }, { limitS: FULL_LIMIT_S, extraEnv }),
    };
  }
  return { rows, oneThread, limit, prefillBlock: PREFILL_BLOCK, fullContextBlock: FULL_CONTEXT_BLOCK };
}

// ---- 2. Encoder, 7. compute ceiling ----
async function encoderSweep(docs) {
  const doc = docs[SIZES.find((n) => n >= 16384) ?? SIZES[SIZES.length - 1]];
  const big = 1 << 20;
  const settings = [
    ...[1, 4, 8, 16, 32, 128].map((b) => ({ maxBatchSize: b, maxBatchTokens: big })),
    ...[2048, 8192, 32768].map((t) => ({ maxBatchSize: 256, maxBatchTokens: t })),
    { maxBatchSize: config.encoderMaxBatchSize, maxBatchTokens: config.encoderMaxBatchTokens },
  ];
  log('encoder sweep');
  const sweep = await child('encoder', { doc: doc.path, settings, reps: 2 });
  // Thread settings: the default setting again with one intra-op thread per session.
  log('encoder, INTRA_OP_THREADS=1');
  const oneThread = await child('encoder', { doc: doc.path, settings: settings.slice(-1), reps: 2 }, { extraEnv: { INTRA_OP_THREADS: '1' } });
  // The int8 graph at the default setting (ENCODER_PRECISION=int8), beside the sweep's f32.
  log('encoder, ENCODER_PRECISION=int8');
  const int8 = await child('encoder', { doc: doc.path, settings: settings.slice(-1), reps: 2 }, { extraEnv: { ENCODER_PRECISION: 'int8' } });
  return { ...sweep, oneThread, int8 };
}

async function computeCeiling() {
  const onnx = join(work, 'matmul.onnx');
  const m = 2048;
  execFileSync('/usr/bin/python3', [join(root, 'bench/onnx_tools.py'), 'matmul', onnx, String(m), String(m), String(m)]);
  const flopsModel = JSON.parse(execFileSync('/usr/bin/python3', [join(root, 'bench/onnx_tools.py'), 'encoder-flops', resolve(root, config.modelPath, 'encoder.onnx')], { encoding: 'utf8' }));
  log('matmul ceiling');
  const matmul = await child('matmul', { onnx, m, k: m, n: m, reps: 5 });
  return { matmul, flopsModel };
}

// ---- 3. Decoder ----
async function decoderCosts(docs) {
  log('decoder');
  return child('decoder', { doc: docs[SIZES[SIZES.length - 1]].path, softCounts: [64, 256, 512], reps: 3, steps: 64 });
}

// ---- 4, 5. Pipeline and re-ask ----
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


async function pipeline(docs) {
  const doc = docs[SIZES[SIZES.length - 1]];
  const text = readFileSync(doc.path, 'utf8');
  const generation = { maxNewTokens: 16 };
  const q1 = { type: 'qa', question: 'Which version of the licence may you choose?' };
  const q2 = { type: 'qa', question: 'Who holds the copyright?' };
  const q3 = { type: 'qa', question: 'What must a distributor provide with the object code?' };
  const port = 18000 + (process.pid % 1000);
  const base = `http://127.0.0.1:${port}`;
  const dataDir = join(work, 'data');
  // One tenant per cold measurement: soft prompts are cached per tenant (on disk, and decoded in the decoder's
  // memory), so a job under a fresh tenant encodes and reads everything, as a first job on a document does.
  const tenantKey = (t) => `bench-key-${t}-0123456789abcdef`;
  const TENANTS = 6;
  const apiKeys = Array.from({ length: TENANTS }, (_, t) => `bench${t}:${tenantKey(t)}`).join(',');
  const serverEnv = { PORT: String(port), HOST: '127.0.0.1', REDIS_PREFIX: `e2llm-bench-${process.pid}`, DATA_DIR: dataDir, BLOB_STORE: 'local', LOG_LEVEL: 'warn', API_KEYS: apiKeys };
  const out = { generation, tokens: doc.tokens };

  out.padding = await encoderPadding(doc.path);
  log('pipeline: npm start');
  const server = spawn(process.execPath, [join(root, 'apps/cli/bin/e2llm.js'), 'serve'], { cwd: root, env: { ...env, ...serverEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
  let serverErr = '';
  server.stderr.on('data', (d) => (serverErr += d));
  const http = async (method, path, body, tenant) => {
    const headers = { authorization: `Bearer ${tenantKey(tenant)}`, ...(body ? { 'content-type': 'application/json' } : {}) };
    const res = await fetch(base + path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    const json = await res.json().catch(() => ({}));
    if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
    return json;
  };
  // Documents have no event stream: their readiness is polled every 20 ms (at most 20 ms late, on a first ask that
  // takes seconds).
  const until = async (path, done, tenant, limitMs = 300_000) => {
    const t = Date.now();
    for (;;) {
      const r = await http('GET', path, undefined, tenant);
      if (done(r)) return r;
      if (['failed', 'cancelled'].includes(r.status)) throw new Error(`${path} ${r.status}: ${JSON.stringify(r.error)}`);
      if (Date.now() - t > limitMs) throw new Error(`${path} did not finish in ${limitMs} ms`);
      await sleep(20);
    }
  };
  // A job's end is read from its event stream (bench/job-events.mjs): no poll interval adds to the measured time.
  const finished = (id, tenant) => jobEnd(base, id, `Bearer ${tenantKey(tenant)}`);
  const job = async (path, body, tenant) => {
    const t = performance.now();
    const j = await http('POST', path, body, tenant);
    const r = await finished(j.id, tenant);
    return { wallMs: performance.now() - t, result: r.result };
  };
  try {
    out.startupMs = await untilReady(base, { detail: () => serverErr.slice(-500) });
    await job('/v1/jobs', { text: text.slice(0, 3000), task: q1, generation }, 0);
    const clearCache = () => rmSync(join(dataDir, 'soft-prompts'), { recursive: true, force: true });
    out.jobs = [];
    out.cli = [];
    // Interleaved, so both see the same machine load: e2llm ask (its own process; totalMs excludes loading the
    // model), then the same document through the server.
    for (let i = 0; i < 3; i++) {
      log('pipeline: e2llm ask');
      const c = await measure(process.execPath, [join(root, 'apps/cli/bin/e2llm.js'), 'ask', doc.path, '--question', q1.question, '--max-new-tokens', String(generation.maxNewTokens), '--json']);
      out.cli.push(c.failed ? c : { totalMs: c.timings.totalMs, wallMs: c.wallMs, answer: c.answer, timings: c.timings });
      clearCache();
      log('pipeline: POST /v1/jobs');
      const r = await job('/v1/jobs', { text, task: q1, generation }, 1 + i);
      out.jobs.push({ wallMs: r.wallMs, answer: r.result.text, timings: r.result.timings, usage: r.result.usage });
    }
    // The same document again as a new job: every chunk is found in the soft-prompt cache.
    log('pipeline: POST /v1/jobs, cached chunks');
    const cached = await job('/v1/jobs', { text, task: q1, generation }, 3);
    out.cachedJob = { wallMs: cached.wallMs, timings: cached.result.timings };

    clearCache();
    log('re-ask: POST /v1/documents');
    const t1 = performance.now();
    const d = await http('POST', '/v1/documents', { text }, 4);
    await until(`/v1/documents/${d.id}`, (x) => x.status === 'ready', 4);
    const encodeMs = performance.now() - t1;
    const first = await job(`/v1/documents/${d.id}/jobs`, { task: q1, generation }, 4);
    // Later questions: a different one, the first again (same answer expected), a third; their median is the re-ask.
    const later = [];
    for (const task of [q2, q1, q3]) later.push(await job(`/v1/documents/${d.id}/jobs`, { task, generation }, 4));
    const mid = [...later].sort((a, b) => a.wallMs - b.wallMs)[1];
    // The largest document the window takes, cold (tenant 5, cache emptied), with the server's peak resident memory
    // over the job; then `e2llm ask` on it in a process of its own.
    clearCache();
    log('pipeline: the window-limit document');
    const limitText = readFileSync(docs.limit.path, 'utf8');
    const rssBefore = rssMiB(server.pid);
    let serverPeakMiB = rssBefore;
    const sampler = setInterval(() => (serverPeakMiB = Math.max(serverPeakMiB, rssMiB(server.pid))), 100);
    const big = await job('/v1/jobs', { text: limitText, task: q1, generation }, 5).finally(() => clearInterval(sampler));
    const ask = await measure(process.execPath, [join(root, 'apps/cli/bin/e2llm.js'), 'ask', docs.limit.path, '--question', q1.question, '--max-new-tokens', String(generation.maxNewTokens), '--json']);
    out.limit = {
      chunks: big.result.usage.chunks,
      chars: limitText.length,
      wallMs: big.wallMs,
      timings: big.result.timings,
      serverRssBeforeMiB: rssBefore,
      serverPeakMiB,
      ask: ask.failed ? ask : { totalMs: ask.timings.totalMs, peakMiB: ask.watchedPeakMiB, timings: ask.timings, sameAnswer: ask.answer === big.result.text },
    };
    out.reask = { documentEncodeMs: encodeMs, firstMs: encodeMs + first.wallMs, firstJobMs: first.wallMs, laterMs: later.map((x) => x.wallMs), secondMs: mid.wallMs, secondTimings: mid.result.timings, sameAnswer: later[1].result.text === first.result.text };
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('close', r));
    dropRedisKeys(serverEnv.REDIS_PREFIX);
  }
  return out;
}

/**
 * Encoder padding (deterministic): all chunks planned together, as \`e2llm ask\` does, against the pipeline's encode
 * children as the API groups them (groupEncodeChildren: by the planner's token counts) and the encoder worker plans
 * each one (planPaddedBatches over the child's chunks).
 */
export async function encoderPadding(path) {
  const { E2llmModel } = await import('@lib/model-runtime');
  const { ENCODER_BATCH_COST_TOKENS, groupEncodeChildren, planPaddedBatches } = await import('@lib/shared');
  const model = await E2llmModel.load(config, { encoder: true });
  const text = readFileSync(path, 'utf8');
  const chunks = model.chunk(text);
  const lens = chunks.map((c) => c.ids.length);
  const limits = { maxBatchTokens: config.encoderMaxBatchTokens, maxBatchSize: config.encoderMaxBatchSize };
  const cost = (ls, batches) => batches.map((b) => b.length * Math.max(...b.map((i) => ls[i])));
  const whole = cost(lens, planPaddedBatches(lens, { ...limits, batchCostTokens: ENCODER_BATCH_COST_TOKENS }));
  const groups = groupEncodeChildren(chunks.map((c) => ({ ...c, tokens: c.ids.length })), { maxChunks: config.encodeJobMaxChunks, maxTokens: config.encodeJobMaxChunks * model.pkg.manifest.encoder.maxTokens });
  const children = [];
  for (const g of groups) {
    const ls = g.map((ref) => ref.tokens);
    children.push(...cost(ls, planPaddedBatches(ls, { ...limits, batchCostTokens: ENCODER_BATCH_COST_TOKENS })));
  }
  await model.release();
  const sum = (xs) => xs.reduce((a, b) => a + b, 0);
  return { tokens: sum(lens), inProcess: { batches: whole.length, padded: sum(whole) }, perChild: { batches: children.length, padded: sum(children), children: groups.length }, childSize: config.encodeJobMaxChunks };
}

// ---- 6. Orchestration ----
async function orchestration() {
  const runs = [];
  for (const [flows, children] of [
    [1000, 1],
    [200, 16],
  ]) {
    log(`orchestration: ${flows} flows x ${children} children`);
    runs.push(await measure(process.execPath, [join(root, 'bench/orchestration.mjs'), JSON.stringify({ flows, children, concurrency: 32, redisUrl: config.redisUrl, prefix: `e2llm-bench-orch-${process.pid}` })], { limitS: 180 }));
  }
  return runs;
}

/** Simple commands per second the machine's Redis serves (redis-benchmark: SET and GET, 50 clients, no pipelining). */
function redisBenchmark() {
  const url = new URL(config.redisUrl);
  const target = ['-h', url.hostname, '-p', url.port || '6379', '-n', '15'];
  // On database 15, its one key removed after.
  const csv = execFileSync('redis-benchmark', [...target.slice(0, 4), '--dbnum', '15', '-n', '200000', '-c', '50', '-t', 'set,get', '--csv'], { encoding: 'utf8' });
  execFileSync('redis-cli', [...target, 'del', 'key:__rand_int__']);
  const rps = Object.fromEntries(
    csv
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => line.split(',').map((x) => x.replace(/"/g, '')))
      .map(([test, r]) => [test.toLowerCase(), Number(r)]),
  );
  return { setPerS: rps.set, getPerS: rps.get, clients: 50, requests: 200000 };
}

// BENCH_ONLY=pipeline,reask (comma-separated section names: orchestration, encoder, compute, decoder, pipeline,
// reask, context) reruns only those sections over the last results.json; pipeline and reask share one server run, so
// either runs both. The full run's machine and date stay; each rerun section records its own date and load.
const SECTIONS = ['orchestration', 'encoder', 'compute', 'decoder', 'pipeline', 'reask', 'context'];
const only = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',').map((x) => x.trim()).filter(Boolean)) : null;
for (const name of only ?? []) if (!SECTIONS.includes(name)) throw new Error(`BENCH_ONLY: unknown section ${name} (sections: ${SECTIONS.join(', ')})`);
if (only?.has('reask')) only.add('pipeline');
const previous = only ? JSON.parse(readFileSync(join(root, 'docs/benchmarks/results.json'), 'utf8')) : {};
const results = only
  ? { ...previous, reruns: { ...previous.reruns } }
  : { machine: machine(), startedAt: new Date(started).toISOString(), limits: { fullContextS: FULL_LIMIT_S, memCapMiB: MEM_CAP_MIB } };
const want = (name) => !only || only.has(name);
const rerunMachine = only ? machine() : null;
try {
  const docs = await documents();
  results.documents = Object.fromEntries(Object.entries(docs).map(([k, v]) => [k, { tokens: v.tokens, chars: v.chars }]));
  // A section that fails is reported as failed; the others still run.
  const guarded = async (name, fn) => {
    try {
      return await fn();
    } catch (err) {
      log(`${name} failed: ${err.message}`);
      return { failed: err.message };
    }
  };
  if (want('orchestration')) {
    results.orchestration = await guarded('orchestration', orchestration);
    if (!Array.isArray(results.orchestration)) results.orchestration = [results.orchestration];
    results.redisBenchmark = await guarded('redis-benchmark', redisBenchmark);
  }
  if (want('encoder')) results.encoder = await guarded('encoder', () => encoderSweep(docs));
  if (want('compute')) {
    results.compute = await guarded('compute ceiling', computeCeiling);
    if (results.compute.failed) results.compute = { matmul: { failed: results.compute.failed } };
  }
  if (want('decoder')) results.decoder = await guarded('decoder', () => decoderCosts(docs));
  if (want('pipeline')) results.pipeline = await guarded('pipeline', () => pipeline(docs));
  if (want('context')) results.context = await contextScaling(docs);
} finally {
  rmSync(work, { recursive: true, force: true });
}
if (only) {
  const run = { startedAt: new Date(started).toISOString(), durationS: Math.round((Date.now() - started) / 1000), command: `BENCH_ONLY=${process.env.BENCH_ONLY} npm run bench`, loadAvgStart: rerunMachine.loadAvgStart, loadAvgEnd: loadavg().map((x) => +x.toFixed(2)), os: rerunMachine.os, settings: rerunMachine.settings };
  for (const name of only) results.reruns[name === 'reask' ? 'pipeline' : name] = run;
} else {
  results.machine.loadAvgEnd = loadavg().map((x) => +x.toFixed(2));
  results.durationS = Math.round((Date.now() - started) / 1000);
}
mkdirSync(join(root, 'docs/benchmarks'), { recursive: true });
writeFileSync(join(root, 'docs/benchmarks/results.json'), `${JSON.stringify(results, null, 2)}\n`);
// The stage profile of one pipeline job (node bench/profile.mjs), when one was written, goes in the Profile section.
let profile = null;
try {
  profile = JSON.parse(readFileSync(join(root, 'docs/benchmarks/profile.json'), 'utf8'));
} catch {
  /* none yet */
}
// The load run (npm run bench:load), when one was written, is section 9.
let loadRun = null;
try {
  loadRun = JSON.parse(readFileSync(join(root, 'docs/benchmarks/load-run.json'), 'utf8'));
} catch {
  /* none yet */
}
const { markdown, svg } = renderReport(results, profile, loadRun);
writeFileSync(join(root, 'docs/benchmarks/ttft.svg'), svg);
writeFileSync(join(root, 'docs/benchmarks.md'), markdown);
log(`wrote docs/benchmarks.md in ${Math.round((Date.now() - started) / 1000)}s`);
process.exit(0);
