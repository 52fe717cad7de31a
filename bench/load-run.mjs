// npm run bench:load (issue 21, item 4): N concurrent jobs on distinct 32k-token documents through the embedded
// server (`npm start`: `e2llm serve`, the API and both workers in one process, started as bench/run.mjs starts it),
// with jobs/min, end-to-end latency percentiles (first POST to the succeeded event), the server's peak RSS and Redis
// memory. Prints one JSON line; with --write (or LOAD_WRITE=1) also writes docs/benchmarks/load-run.json, which
// bench/report.mjs's renderLoadRun renders.
//
// Knobs: a JSON object as the first argument ({"jobs":200,"tokens":32768,"tenants":1,"maxNewTokens":16,
// "raise":true}) or env LOAD_JOBS, LOAD_TOKENS, LOAD_TENANTS, LOAD_MAX_NEW_TOKENS, LOAD_RAISE; LOAD_JOB_LIMIT_S (one
// job's end-to-end limit, default 3 h). Server settings (ENCODER_CONCURRENCY, PLANNER_THREADS, ...) pass through from
// the environment, as they would to `npm start`; the settings in force are in the JSON.
//
// Admission: the defaults admit 200 jobs from one tenant at once (RATE_LIMIT_PER_MINUTE 600 creations a minute,
// MAX_QUEUED_JOBS_PER_TENANT 1000 unfinished jobs, MAX_ENCODE_QUEUE_DEPTH 20,000 waiting encode children against
// about 4 a job, the planning thread's queue of 256 texts and 32M characters against 200 x ~95k). So the run uses
// one tenant and the defaults. checkAdmission() records each limit against what the run needs; where one would refuse
// the run (more jobs, a lowered setting) it raises that setting as an operator would, by its env var, printed and
// recorded under admission.raised, rather than relying on 429s. A 429 that comes anyway is waited out (Retry-After)
// and retried, and the retries are counted; the job's latency still runs from its first POST. With LOAD_RAISE=0
// nothing is raised: the run shows what the given settings do to this load.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { DocumentPlanner, TextTokenizer, loadModelPackage } from '@lib/model-runtime';
import { TERMINAL_STATUSES, groupEncodeChildren, loadConfig } from '@lib/shared';
import { buildCorpus, cutToTokens } from './corpus.mjs';
import { jobEnd } from './job-events.mjs';
import { rssMiB, untilReady } from './serve.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = process.env;
const argv = process.argv.slice(2);
const knobs = JSON.parse(argv.find((a) => a.startsWith('{')) ?? '{}');
const JOBS = Number(knobs.jobs ?? env.LOAD_JOBS ?? 200);
const TOKENS = Number(knobs.tokens ?? env.LOAD_TOKENS ?? 32768);
const TENANTS = Number(knobs.tenants ?? env.LOAD_TENANTS ?? 1);
const MAX_NEW_TOKENS = Number(knobs.maxNewTokens ?? env.LOAD_MAX_NEW_TOKENS ?? 16);
const WRITE = argv.includes('--write') || ['1', 'true'].includes(env.LOAD_WRITE ?? '');
/** false: keep the server settings as given even where they refuse the run (its 429s are then waited out and counted). */
const RAISE = (knobs.raise ?? !['0', 'false'].includes(env.LOAD_RAISE ?? '')) !== false;
for (const [name, v] of Object.entries({ jobs: JOBS, tokens: TOKENS, tenants: TENANTS, maxNewTokens: MAX_NEW_TOKENS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`load-run: ${name} must be a positive integer (got ${v})`);
}
/** How long one job may take end to end before the run calls it failed: every job waits behind the ones before it. */
const JOB_LIMIT_MS = Number(env.LOAD_JOB_LIMIT_S ?? 3 * 3600) * 1000;
const QUESTION = 'Which version of the licence may you choose?';

const started = Date.now();
const log = (...a) => console.error(`[load-run ${((Date.now() - started) / 1000).toFixed(0)}s]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const work = mkdtempSync(join(tmpdir(), 'e2llm-load-'));
const port = 19000 + (process.pid % 1000);
const base = `http://127.0.0.1:${port}`;
const prefix = `e2llm-load-${process.pid}`;
const tenantKey = (t) => `load-key-${t}-0123456789abcdef`;
const tenantOf = (j) => j % TENANTS;

/** Nearest-rank percentile of sorted numbers. */
const pctl = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] : null);
const spread = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const r = (x) => (x == null ? null : Math.round(x));
  return { p50: r(pctl(s, 50)), p90: r(pctl(s, 90)), p99: r(pctl(s, 99)), max: r(s[s.length - 1]), min: r(s[0]), mean: s.length ? Math.round(s.reduce((a, b) => a + b, 0) / s.length) : null };
};
const mib = (bytes) => +(bytes / 2 ** 20).toFixed(1);

/**
 * Each job's text is distinct in every chunk, so nothing comes from the soft-prompt cache (content-addressed by chunk
 * text, per tenant). A per-job rotation of the corpus's paragraphs alone is not enough, nor a distinct first line:
 * the chunker cuts at line breaks and sentence ends, so it realigns on text two documents share. So every line starts
 * with the job's tag. documents() cuts each document as the server does and counts the chunks shared between jobs
 * (document.chunks.sharedAcrossJobs) and those a document repeats itself (repeatedWithinJob): both expected 0, and
 * the jobs' own progress.chunksCached, summed, is in the JSON as chunksCached.
 */
function jobText(paragraphs, j) {
  const offset = Math.floor((j * paragraphs.length) / JOBS);
  const rotated = [...paragraphs.slice(offset), ...paragraphs.slice(0, offset)];
  const tag = `[d${j}]`;
  // Lines over 100 characters (a few unwrapped paragraphs, lists of file names) are wrapped first: a chunk of many
  // tokens is split again, smaller, down to pieces of a line or less, and each piece must still hold a tag.
  const wrap = (line) => {
    if (line.length <= 100) return [line];
    const lines = [];
    let cur = '';
    for (const word of line.split(' ')) {
      if (cur && cur.length + 1 + word.length > 100) {
        lines.push(cur);
        cur = word;
      } else {
        cur = cur ? `${cur} ${word}` : word;
      }
    }
    return [...lines, cur];
  };
  const mark = (line) => (line.trim() ? wrap(line).map((l) => `${tag} ${l}`).join('\n') : line);
  return rotated.map((p) => p.split('\n').map(mark).join('\n')).join('\n\n');
}

/**
 * cutToTokens, or where its proportional steps do not settle within 0.2% (a token-dense stretch at the cut), the
 * longest prefix within the token count, found by bisection.
 */
function cutExactly(text, tok) {
  try {
    return cutToTokens(text, TOKENS, tok);
  } catch {
    let lo = 0;
    let hi = Math.min(text.length, TOKENS * 8);
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (tok.encode(text.slice(0, mid)).length <= TOKENS) lo = mid;
      else hi = mid;
    }
    const tokens = tok.encode(text.slice(0, lo)).length;
    if (tokens < TOKENS * 0.998) throw new Error(`could not size a document to ${TOKENS} tokens (got ${tokens})`);
    return { text: text.slice(0, lo), tokens };
  }
}

async function documents(config) {
  const modelDir = resolve(root, config.modelPath);
  const pkg = await loadModelPackage(modelDir);
  const tok = await TextTokenizer.load(pkg.files.decoderTokenizer);
  // The server's own cut (the package's chunking and encoder token limit), to check the documents share no chunk.
  const planner = await DocumentPlanner.load(modelDir);
  // Enough paragraphs that the rotations differ in content too; each document takes about 3 to 4 characters a token.
  const paragraphs = buildCorpus(root, Math.min(TOKENS * 3.8 * 6, 2_500_000)).split('\n\n');
  const docs = [];
  const owner = new Map();
  const chunks = { total: 0, sharedAcrossJobs: 0, repeatedWithinJob: 0 };
  for (let j = 0; j < JOBS; j++) {
    const { text, tokens } = cutExactly(jobText(paragraphs, j), tok);
    const cut = planner.chunk(text);
    // The encode children the API will make of it (JobsService's grouping, as bench/run.mjs's encoderPadding models it).
    const limits = { maxChunks: config.encodeJobMaxChunks, maxTokens: config.encodeJobMaxChunks * pkg.manifest.encoder.maxTokens };
    const children = groupEncodeChildren(cut.map((c) => ({ ...c, tokens: c.ids.length })), limits).length;
    docs.push({ text, tokens, chunks: cut.length, children });
    for (const c of cut) {
      const hash = createHash('sha256').update(c.text).digest('base64');
      const first = owner.get(hash);
      chunks.total++;
      if (first === undefined) owner.set(hash, j);
      else if (first === j) chunks.repeatedWithinJob++;
      else chunks.sharedAcrossJobs++;
    }
    if ((j + 1) % 25 === 0) log(`documents: ${j + 1}/${JOBS}`);
  }
  return { docs, chunks };
}

/**
 * What the server's limits allow against this run, and the settings raised where they would refuse it: the per-tenant
 * creation rate and unfinished-job cap, the encode queue depth (every job's encode children, all waiting at once in
 * the worst case) and the planning thread's queue (256 texts and 32M characters a thread, in PlanningPool).
 */
function checkAdmission(config, docs) {
  const perTenant = Math.ceil(JOBS / TENANTS);
  const chars = docs.reduce((a, d) => a + d.text.length, 0);
  const encodeChildren = docs.reduce((a, d) => a + d.children, 0);
  const checks = [
    { setting: 'RATE_LIMIT_PER_MINUTE', value: config.rateLimitPerMinute, need: perTenant, per: 'tenant' },
    { setting: 'MAX_QUEUED_JOBS_PER_TENANT', value: config.maxQueuedJobsPerTenant, need: perTenant, per: 'tenant' },
    { setting: 'MAX_ENCODE_QUEUE_DEPTH', value: config.maxEncodeQueueDepth, need: encodeChildren, per: 'service' },
  ];
  const raised = {};
  for (const c of checks) {
    c.ok = c.value >= c.need;
    if (!c.ok) raised[c.setting] = String(c.need);
  }
  // Not settings: the planning pool's queue bounds, which only more threads widen.
  const planner = { texts: config.plannerThreads * 256, chars: 32_000_000, need: { texts: JOBS, chars } };
  planner.ok = planner.texts >= JOBS && planner.chars >= chars;
  return { tenants: TENANTS, jobsPerTenant: perTenant, checks, planner, raised, note: planner.ok ? undefined : 'the planning pool may answer 429 OVERLOADED; those requests are retried after Retry-After' };
}

/** Resident memory of a process and its descendants (threads share the process's), in MiB; 0 once it has exited. */
function treeRssMiB(pid) {
  let mib = rssMiB(pid);
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean)) mib += treeRssMiB(Number(child));
    }
  } catch {
    /* exited */
  }
  return mib;
}

/**
 * Commands Redis has run since it started, by command, less this script's own sampling (INFO and SCAN): the
 * difference over the run is what the server's jobs cost Redis (other clients of the same Redis count in it too).
 */
const redisCommands = async (redis) => {
  let calls = 0;
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) if (!['info', 'scan'].includes(m[1])) calls += Number(m[2]);
  return calls;
};

const redisMemory = async (redis) => {
  const info = await redis.info('memory');
  const field = (name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1] ?? NaN);
  return { used: field('used_memory'), peak: field('used_memory_peak') };
};
async function countKeys(redis) {
  let n = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    n += keys.length;
  } while (cursor !== '0');
  return n;
}
async function deleteKeys(redis) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/**
 * A POST through node:http with no time limit: the last of 200 creations waits for the API to plan the 199 before it
 * (one planning thread), which can pass fetch's fixed 300 s wait for response headers on a loaded machine.
 */
function post(path, headers, body) {
  return new Promise((resolveRes, reject) => {
    const req = httpRequest(`${base}${path}`, { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let json = {};
        try {
          json = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolveRes({ status: res.statusCode, headers: res.headers, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const machine = () => {
  let redisVersion = 'unknown';
  try {
    redisVersion = /redis_version:(\S+)/.exec(execFileSync('redis-cli', ['info', 'server'], { encoding: 'utf8' }))?.[1] ?? 'unknown';
  } catch {
    /* no redis-cli */
  }
  return { nproc: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', memGiB: +(totalmem() / 2 ** 30).toFixed(1), node: process.version, redis: redisVersion };
};

async function main() {
  const apiKeys = Array.from({ length: TENANTS }, (_, t) => `load${t}:${tenantKey(t)}`).join(',');
  const serverEnv = { PORT: String(port), HOST: '127.0.0.1', REDIS_PREFIX: prefix, DATA_DIR: join(work, 'data'), BLOB_STORE: 'local', LOG_LEVEL: 'warn', API_KEYS: apiKeys };
  let config = loadConfig({ ...env, ...serverEnv });
  log(`documents: ${JOBS} x ${TOKENS} tokens`);
  const t0 = performance.now();
  const { docs, chunks } = await documents(config);
  const documentsS = +((performance.now() - t0) / 1000).toFixed(1);
  const admission = checkAdmission(config, docs);
  if (!RAISE) admission.raised = {};
  if (Object.keys(admission.raised).length) {
    log(`raising server settings for this run: ${Object.entries(admission.raised).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    Object.assign(serverEnv, admission.raised);
    config = loadConfig({ ...env, ...serverEnv });
  }
  const settings = Object.fromEntries(
    [
      'executionProviders', 'intraOpThreads', 'graphOptimization', 'encoderBackend', 'decoderBackend', 'encoderMaxBatchTokens', 'encoderMaxBatchSize',
      'encodeJobMaxChunks', 'encoderConcurrency', 'decoderConcurrency', 'plannerThreads', 'blobFetchConcurrency', 'softPromptCacheMb', 'softPromptDtype',
      'rateLimitPerMinute', 'maxQueuedJobsPerTenant', 'maxEncodeQueueDepth', 'blobStore',
    ].map((key) => [key, config[key]]),
  );

  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 2 });
  const redisBefore = await redisMemory(redis);
  const commandsBefore = await redisCommands(redis);
  const loadAvgStart = loadavg().map((x) => +x.toFixed(2));
  log('npm start (e2llm serve)');
  const server = spawn(process.execPath, [join(root, 'apps/cli/bin/e2llm.js'), 'serve'], { cwd: root, env: { ...env, ...serverEnv }, stdio: ['ignore', 'ignore', 'pipe'] });
  let serverErr = '';
  server.stderr.on('data', (d) => (serverErr = (serverErr + d).slice(-20_000)));
  const exited = new Promise((r) => server.once('close', (code, signal) => r({ code, signal })));
  let serverGone = null;
  exited.then((x) => (serverGone = x));

  // Samplers: the server's RSS every 200 ms; Redis's used_memory (and, every 2 s, the keys under the run's prefix).
  const peak = { rssMiB: 0, redisUsed: redisBefore.used, keysAtRedisPeak: 0, keys: 0 };
  let lastKeys = 0;
  const rssTimer = setInterval(() => (peak.rssMiB = Math.max(peak.rssMiB, treeRssMiB(server.pid))), 200);
  let sampling = true;
  const redisSampler = (async () => {
    let tick = 0;
    while (sampling) {
      try {
        if (tick++ % 4 === 0) {
          lastKeys = await countKeys(redis);
          peak.keys = Math.max(peak.keys, lastKeys);
        }
        const { used } = await redisMemory(redis);
        if (used > peak.redisUsed) {
          peak.redisUsed = used;
          peak.keysAtRedisPeak = lastKeys;
        }
      } catch {
        /* a missed sample */
      }
      await sleep(500);
    }
  })();

  const out = {
    kind: 'load-run',
    startedAt: new Date(started).toISOString(),
    command: `node bench/load-run.mjs ${argv.join(' ')}`.trim(),
    machine: machine(),
    jobs: JOBS,
    concurrency: JOBS,
    tenants: TENANTS,
    document: { tokens: TOKENS, tokensMin: Math.min(...docs.map((d) => d.tokens)), tokensMax: Math.max(...docs.map((d) => d.tokens)), charsMean: Math.round(docs.reduce((a, d) => a + d.text.length, 0) / JOBS), chunks, encodeChildren: docs.reduce((a, d) => a + d.children, 0) },
    generation: { maxNewTokens: MAX_NEW_TOKENS },
    question: QUESTION,
    settings,
    admission,
    documentsS,
  };
  try {
    out.startupMs = await untilReady(base, { limitMs: 180_000, gone: () => serverGone && JSON.stringify(serverGone), detail: () => serverErr.slice(-800) });
    out.rssIdleMiB = +treeRssMiB(server.pid).toFixed(1);
    log(`ready in ${out.startupMs} ms; submitting ${JOBS} jobs at once`);

    const retries = { total: 0, byCode: {} };
    const submit = async (j) => {
      const body = JSON.stringify({ text: docs[j].text, task: { type: 'qa', question: QUESTION }, generation: { maxNewTokens: MAX_NEW_TOKENS } });
      const headers = { authorization: `Bearer ${tenantKey(tenantOf(j))}`, 'content-type': 'application/json' };
      for (;;) {
        const res = await post('/v1/jobs', headers, body);
        const json = res.json;
        if (res.status === 429) {
          const code = json.error?.code ?? 'unknown';
          retries.total++;
          retries.byCode[code] = (retries.byCode[code] ?? 0) + 1;
          await sleep(Number(res.headers['retry-after'] ?? 1) * 1000);
          continue;
        }
        if (res.status >= 400) throw new Error(`POST /v1/jobs: ${res.status} ${JSON.stringify(json).slice(0, 300)}`);
        return json.id;
      }
    };
    // A job's end from its event stream; a stream that ends early (the API lost its Redis reader under load) is
    // opened again while the job, read back, has not ended, so one dropped stream is not counted a failed job.
    const waitEnd = async (id, key, t) => {
      let reopened = 0;
      for (;;) {
        try {
          return await jobEnd(base, id, `Bearer ${key}`, Math.max(1000, Math.round(JOB_LIMIT_MS - (performance.now() - t))));
        } catch (err) {
          const res = await fetch(`${base}/v1/jobs/${id}`, { headers: { authorization: `Bearer ${key}` } });
          const now = await res.json().catch(() => ({}));
          if (res.ok && now.status === 'succeeded') return now;
          if (!res.ok || TERMINAL_STATUSES.includes(now.status) || performance.now() - t > JOB_LIMIT_MS) throw err;
          if (streamsReopened++ < 3) log(`event stream of ${id} ended early (${err.message}); opened again`);
          // At most one try a second, and not for ever: a stream that keeps failing is a failed run.
          if (++reopened > 60) throw err;
          await sleep(1000);
        }
      }
    };
    let streamsReopened = 0;
    let ended = 0;
    const runJob = async (j) => {
      const t = performance.now();
      let id = null;
      try {
        id = await submit(j);
        const acceptedMs = performance.now() - t;
        const job = await waitEnd(id, tenantKey(tenantOf(j)), t);
        const e2eMs = performance.now() - t;
        if (++ended % Math.max(1, Math.round(JOBS / 10)) === 0) log(`${ended}/${JOBS} ended`);
        return { j, id, ok: true, acceptedMs, e2eMs, endedAt: performance.now(), timings: job.result?.timings ?? {}, usage: job.result?.usage ?? {}, progress: job.progress };
      } catch (err) {
        ended++;
        return { j, id, ok: false, error: err.message, e2eMs: performance.now() - t, endedAt: performance.now() };
      }
    };
    const tStart = performance.now();
    const results = await Promise.all(docs.map((_, j) => runJob(j)));
    const wallMs = performance.now() - tStart;

    const ok = results.filter((r) => r.ok);
    out.succeeded = ok.length;
    out.failures = results.filter((r) => !r.ok).map((r) => ({ job: r.j, id: r.id, error: r.error }));
    out.wallS = +(wallMs / 1000).toFixed(1);
    out.jobsPerMin = +((ok.length / wallMs) * 60_000).toFixed(2);
    out.latencyMs = spread(ok.map((r) => r.e2eMs));
    out.acceptMs = spread(ok.map((r) => r.acceptedMs));
    out.retries429 = retries;
    out.streamsReopened = streamsReopened;
    // The server's own stage times (job.result.timings), whose queueMs is the wait for the first encode.
    const stageKeys = [...new Set(ok.flatMap((r) => Object.keys(r.timings)))];
    out.serverTimingsMs = Object.fromEntries(stageKeys.map((k) => [k, spread(ok.map((r) => r.timings[k]).filter((x) => typeof x === 'number'))]));
    out.chunksPerJob = spread(ok.map((r) => r.usage.chunks ?? r.progress?.chunksTotal).filter((x) => typeof x === 'number'));
    out.chunksCached = ok.reduce((a, r) => a + (r.progress?.chunksCached ?? 0), 0);
    try {
      out.serverVmHwmMiB = +(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024).toFixed(1);
    } catch {
      out.serverVmHwmMiB = null;
    }
  } finally {
    clearInterval(rssTimer);
    sampling = false;
    await redisSampler;
    // The sampled peak of the process tree, or the kernel's high-water mark of the server process where a 200 ms
    // sample missed a spike.
    out.peakRssMiB = +Math.max(peak.rssMiB, out.serverVmHwmMiB ?? 0).toFixed(1);
    out.loadAvgStart = loadAvgStart;
    out.loadAvgEnd = loadavg().map((x) => +x.toFixed(2));
    const keysAtEnd = await countKeys(redis).catch(() => null);
    const redisAfter = await redisMemory(redis).catch(() => ({}));
    const commands = (await redisCommands(redis)) - commandsBefore;
    // used_memory is the whole Redis's (other users of the same Redis count in it); the deltas are against the
    // figure just before the server started. used_memory_peak is Redis's own peak since it started (or its last
    // CONFIG RESETSTAT, which this run does not call: it would reset other users' figures).
    out.redis = {
      usedMemoryBeforeMiB: mib(redisBefore.used),
      usedMemoryPeakMiB: mib(peak.redisUsed),
      usedMemoryPeakDeltaMiB: mib(peak.redisUsed - redisBefore.used),
      usedMemoryAfterMiB: mib(redisAfter.used),
      usedMemoryPeakInfoBeforeMiB: mib(redisBefore.peak),
      usedMemoryPeakInfoAfterMiB: mib(redisAfter.peak),
      keysAtPeak: peak.keysAtRedisPeak,
      keysMax: peak.keys,
      keysAtEnd,
      commands,
      commandsPerJob: Math.round(commands / JOBS),
    };
    server.kill('SIGTERM');
    const killer = setTimeout(() => server.kill('SIGKILL'), 60_000);
    await exited;
    clearTimeout(killer);
    await deleteKeys(redis).catch((e) => log(`could not delete the keys under ${prefix}: ${e.message}`));
    redis.disconnect();
  }
  out.durationS = Math.round((Date.now() - started) / 1000);
  return out;
}

let out;
try {
  out = await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
for (const f of out.failures) log(`job ${f.job} (${f.id}) failed: ${f.error}`);
console.log(JSON.stringify(out));
if (WRITE) {
  if (out.failures.length) {
    log('not written: some jobs failed');
  } else {
    mkdirSync(join(root, 'docs/benchmarks'), { recursive: true });
    writeFileSync(join(root, 'docs/benchmarks/load-run.json'), `${JSON.stringify(out, null, 2)}\n`);
    log('wrote docs/benchmarks/load-run.json');
  }
}
process.exit(out.failures.length ? 1 : 0);
