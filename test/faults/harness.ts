/**
 * Test-only harness for the fault-injection and load suites: the three roles as child processes
 * (`node apps/cli/bin/e2llm.js api|encoder-worker|decoder-worker`, built with `tsc -b`), a Redis server of the
 * suite's own (so `CLIENT PAUSE` and restarts touch nobody else), an s3rver that can be stopped and started again on
 * the same port and folder, and a webhook receiver that can be taken down and brought back on the same port.
 * Everything listens on 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import S3rver from 's3rver';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const LOOPBACK = '127.0.0.1';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((r) => srv.listen(0, LOOPBACK, r));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** Keeps the last `max` characters of a stream, for failure messages. */
class Tail {
  text = '';
  constructor(private readonly max = 20_000) {}
  push(chunk: Buffer | string) {
    this.text = (this.text + chunk.toString()).slice(-this.max);
  }
}

// ---------------------------------------------------------------------------------------------- Redis of our own

export interface RedisServer {
  port: number;
  url: string;
  /** Runs redis-cli against this server only. */
  cli(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'e2llm-faults-redis-'));
  const tail = new Tail();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', LOOPBACK, '--save', '', '--appendonly', 'no', '--dir', dir, '--protected-mode', 'yes'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (c) => tail.push(c));
  proc.stderr!.on('data', (c) => tail.push(c));
  const cli = (...args: string[]) =>
    new Promise<string>((resolve, reject) => {
      const c = spawn('redis-cli', ['-h', LOOPBACK, '-p', String(port), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      c.stdout!.on('data', (d) => (out += d));
      c.stderr!.on('data', (d) => (out += d));
      c.on('error', reject);
      c.on('exit', () => resolve(out.trim()));
    });
  const t0 = Date.now();
  while ((await cli('ping').catch(() => '')) !== 'PONG') {
    if (Date.now() - t0 > 10_000 || proc.exitCode !== null) throw new Error(`redis-server did not start:\n${tail.text}`);
    await sleep(50);
  }
  return {
    port,
    url: `redis://${LOOPBACK}:${port}`,
    cli,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------------------------------ a restartable s3rver

export interface RestartableS3 {
  endpoint: string;
  bucket: string;
  running(): boolean;
  /** Drops open connections and stops listening; the folder (and so every object) stays. */
  stop(): Promise<void>;
  /** Listens again on the same port and folder. */
  start(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startRestartableS3(bucket: string): Promise<RestartableS3> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'e2llm-faults-s3-'));
  let port = 0;
  let server: S3rver | undefined;
  const start = async () => {
    if (server) return;
    const s = new S3rver({ address: LOOPBACK, port, silent: true, directory, configureBuckets: [{ name: bucket }] });
    // The port was ours a moment ago; a lingering socket can hold it briefly.
    for (let i = 0; ; i++) {
      try {
        ({ port } = await s.run());
        break;
      } catch (err) {
        if (i > 50) throw err;
        await sleep(100);
      }
    }
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (!s) return;
    const closed = s.close();
    s.httpServer?.closeAllConnections();
    await closed;
  };
  await start();
  return {
    endpoint: `http://${LOOPBACK}:${port}`,
    bucket,
    running: () => server !== undefined,
    stop,
    start,
    async destroy() {
      await stop();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

// ----------------------------------------------------------------------------------------- a webhook receiver

export interface ReceivedWebhook {
  body: string;
  headers: IncomingHttpHeaders;
  at: number;
}

export interface WebhookReceiver {
  url: string;
  received: ReceivedWebhook[];
  /** webhook-id -> every delivery with that id. */
  byId(): Map<string, ReceivedWebhook[]>;
  running(): boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received: ReceivedWebhook[] = [];
  let port = 0;
  let server: Server | undefined;
  const start = async () => {
    if (server) return;
    const s = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        received.push({ body, headers: req.headers, at: Date.now() });
        res.writeHead(204).end();
      });
    });
    for (let i = 0; ; i++) {
      try {
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(port, LOOPBACK, () => {
            s.off('error', reject);
            resolve();
          });
        });
        break;
      } catch (err) {
        if (i > 50) throw err;
        await sleep(100);
      }
    }
    port = (s.address() as AddressInfo).port;
    server = s;
  };
  await start();
  return {
    url: `http://${LOOPBACK}:${port}/hooks`,
    received,
    byId() {
      const m = new Map<string, ReceivedWebhook[]>();
      for (const r of received) {
        const id = String(r.headers['webhook-id']);
        m.set(id, [...(m.get(id) ?? []), r]);
      }
      return m;
    },
    running: () => server !== undefined,
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      const closed = new Promise<void>((r) => s.close(() => r()));
      s.closeAllConnections();
      await closed;
    },
    start,
  };
}

// --------------------------------------------------------------------------------------- the roles as processes

export type RoleName = 'api' | 'encoder-worker' | 'decoder-worker';

export class RoleProcess {
  proc?: ChildProcess;
  readonly log = new Tail();
  private ready = false;
  constructor(
    readonly role: RoleName,
    private readonly env: Record<string, string>,
  ) {}

  /** Spawns the role; resolves once it is ready (the API answers /healthz; a worker logged that it is ready). */
  async start(timeoutMs = 30_000): Promise<void> {
    this.ready = false;
    const proc = spawn(process.execPath, [path.join(ROOT, 'apps/cli/bin/e2llm.js'), this.role], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    const onData = (c: Buffer) => {
      this.log.push(c);
      if (/worker ready/.test(c.toString())) this.ready = true;
    };
    proc.stdout!.on('data', onData);
    proc.stderr!.on('data', onData);
    const t0 = Date.now();
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`${this.role} exited with ${proc.exitCode}:\n${this.log.text}`);
      if (this.role === 'api') {
        const ok = await fetch(`http://${LOOPBACK}:${this.env.PORT}/healthz`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);
        if (ok) return;
      } else if (this.ready) return;
      if (Date.now() - t0 > timeoutMs) throw new Error(`${this.role} not ready after ${timeoutMs} ms:\n${this.log.text}`);
      await sleep(50);
    }
  }

  /** Sends the signal and waits for the exit; resolves to the exit code (null when killed by a signal). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<{ code: number | null; signal: string | null } | undefined> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return undefined;
    const exited = new Promise<{ code: number | null; signal: string | null }>((r) => p.once('exit', (code, sig) => r({ code, signal: sig })));
    p.kill(signal);
    return exited;
  }
}

export interface ProcessStack {
  api: RoleProcess;
  encoder: RoleProcess;
  decoder: RoleProcess;
  redis: RedisServer;
  s3: RestartableS3;
  baseUrl: string;
  env: Record<string, string>;
  apiKey: string;
  webhookSecret: string;
  stop(): Promise<void>;
}

/** Starts Redis, S3 and the three roles as child processes; `extraEnv` adds or replaces settings of every role. */
export async function startProcessStack(extraEnv: Record<string, string> = {}): Promise<ProcessStack> {
  const redis = await startRedisServer();
  const s3 = await startRestartableS3('e2llm-faults');
  const port = await freePort();
  const apiKey = `faults-key-${randomBytes(12).toString('hex')}`;
  const webhookSecret = `whsec_${randomBytes(32).toString('base64')}`;
  const env: Record<string, string> = {
    REDIS_URL: redis.url,
    REDIS_PREFIX: `e2llm-faults-${randomBytes(6).toString('hex')}`,
    HOST: LOOPBACK,
    PORT: String(port),
    BLOB_STORE: 's3',
    S3_ENDPOINT: s3.endpoint,
    S3_BUCKET: s3.bucket,
    S3_FORCE_PATH_STYLE: 'true',
    S3_ACCESS_KEY_ID: 'S3RVER',
    S3_SECRET_ACCESS_KEY: 'S3RVER',
    WEBHOOK_SECRET: webhookSecret,
    WEBHOOK_ALLOW_LOOPBACK: 'true',
    WEBHOOK_BACKOFF_MS: '200',
    WEBHOOK_TIMEOUT_MS: '2000',
    WORKER_LOCK_MS: '4000',
    WORKER_STALLED_INTERVAL_MS: '2000',
    API_KEYS: `faults:${apiKey}`,
    LOG_LEVEL: 'info',
    ...extraEnv,
  };
  const api = new RoleProcess('api', { ...env, LOG_LEVEL: extraEnv.LOG_LEVEL ?? 'warn' });
  // Workers log at info: the harness waits for their "worker ready" line.
  const encoder = new RoleProcess('encoder-worker', { ...env, LOG_LEVEL: 'info' });
  const decoder = new RoleProcess('decoder-worker', { ...env, LOG_LEVEL: 'info' });
  const stack: ProcessStack = {
    api,
    encoder,
    decoder,
    redis,
    s3,
    env,
    apiKey,
    webhookSecret,
    baseUrl: `http://${LOOPBACK}:${port}`,
    async stop() {
      await Promise.all([api.kill('SIGKILL'), encoder.kill('SIGKILL'), decoder.kill('SIGKILL')]);
      await s3.destroy();
      await redis.stop();
    },
  };
  try {
    await Promise.all([encoder.start(), decoder.start(), api.start()]);
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}

// ------------------------------------------------------------------------------------------------ API client

export interface ApiResponse {
  status: number;
  headers: Headers;
  body: any;
}

export function apiClient(baseUrl: string, apiKey?: string) {
  const call = async (method: string, route: string, body?: unknown, opts: { timeoutMs?: number; headers?: Record<string, string> } = {}): Promise<ApiResponse> => {
    const res = await fetch(`${baseUrl}${route}`, {
      method,
      headers: {
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
        ...opts.headers,
      },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      /* not JSON */
    }
    return { status: res.status, headers: res.headers, body: parsed };
  };
  return {
    call,
    get: (route: string, opts?: { timeoutMs?: number }) => call('GET', route, undefined, opts),
    post: (route: string, body?: unknown, opts?: { timeoutMs?: number; headers?: Record<string, string> }) => call('POST', route, body ?? {}, opts),
  };
}

export type ApiClient = ReturnType<typeof apiClient>;

export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

/** Polls until every job has ended (transient errors while a fault is on are retried); returns the final records. */
export async function waitForAll(api: ApiClient, ids: string[], timeoutMs: number): Promise<Map<string, any>> {
  const done = new Map<string, any>();
  const t0 = Date.now();
  while (done.size < ids.length) {
    for (const id of ids) {
      if (done.has(id)) continue;
      const res = await api.get(`/v1/jobs/${id}`, { timeoutMs: 5000 }).catch(() => undefined);
      if (res?.status === 200 && TERMINAL.has(res.body.status)) done.set(id, res.body);
    }
    if (done.size === ids.length) break;
    if (Date.now() - t0 > timeoutMs) {
      const pending = ids.filter((id) => !done.has(id));
      throw new Error(`${pending.length} of ${ids.length} jobs did not end within ${timeoutMs} ms: ${pending.join(', ')}`);
    }
    await sleep(200);
  }
  return done;
}

/** Deterministic prose of about `chars` characters, different for every seed (so no chunk is shared between seeds). */
export function syntheticText(seed: number, chars: number): string {
  const words = [
    'harbour', 'lantern', 'keeper', 'tide', 'granite', 'signal', 'winter', 'ledger', 'copper', 'northern', 'island', 'storm',
    'beacon', 'vessel', 'cargo', 'anchor', 'compass', 'meridian', 'orchard', 'bridge', 'river', 'market', 'quarry', 'engine',
    'archive', 'letter', 'garden', 'station', 'valley', 'summit', 'furnace', 'mill', 'clock', 'window', 'candle', 'harvest',
  ];
  let s = (seed * 2654435761) >>> 0 || 1;
  const rnd = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
  const out: string[] = [`Record ${seed}.`];
  let len = out[0]!.length;
  while (len < chars) {
    const n = 6 + Math.floor(rnd() * 10);
    const w: string[] = [];
    for (let i = 0; i < n; i++) w.push(words[Math.floor(rnd() * words.length)]!);
    const sentence = `${w.join(' ')} ${Math.floor(rnd() * 100000)}.`;
    const cap = sentence[0]!.toUpperCase() + sentence.slice(1);
    out.push(rnd() < 0.1 ? `\n\n${cap}` : cap);
    len += cap.length + 1;
  }
  return out.join(' ');
}
