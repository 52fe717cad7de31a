import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { AppError } from '@lib/shared';
import { Webhook } from 'standardwebhooks';
import {
  checkWebhookUrl,
  deliverWebhook,
  generateWebhookSecret,
  isForbiddenAddress,
  type AddressPolicy,
  type Delivery,
  type HostResolver,
  systemResolver,
  WebhookTargets,
} from './index.js';

const STRICT: AddressPolicy = { allowLoopback: false, allowPrivate: false };
const LOOPBACK: AddressPolicy = { allowLoopback: true, allowPrivate: false };
const PRIVATE: AddressPolicy = { allowLoopback: false, allowPrivate: true };
const BOTH: AddressPolicy = { allowLoopback: true, allowPrivate: true };

function caught(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError, nothing was thrown');
}

async function rejected(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError, the promise resolved');
}

describe('isForbiddenAddress', () => {
  // [address, kind]: loopback needs allowLoopback, internal needs allowPrivate, never is refused by every policy.
  // Public addresses are only classified here, never contacted.
  const table: Array<[string, 'public' | 'loopback' | 'internal' | 'never']> = [
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['93.184.216.34', 'public'],
    ['2606:4700::1', 'public'],
    ['2a00:1450:4001:80b::200e', 'public'],
    ['::ffff:8.8.8.8', 'public'],
    ['64:ff9b::808:808', 'public'],
    ['2002:808:808::1', 'public'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['[::1]', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['2002:7f00:1::', 'loopback'],
    ['0.0.0.0', 'never'],
    ['0.1.2.3', 'never'],
    ['::', 'never'],
    ['10.0.0.1', 'internal'],
    ['10.255.255.255', 'internal'],
    ['172.16.0.1', 'internal'],
    ['172.31.255.255', 'internal'],
    ['192.168.1.1', 'internal'],
    ['100.64.0.1', 'internal'],
    ['100.127.255.255', 'internal'],
    ['169.254.1.1', 'internal'],
    ['169.254.169.254', 'never'],
    ['::ffff:169.254.169.254', 'never'],
    ['fd00:ec2::254', 'never'],
    ['198.18.0.1', 'internal'],
    ['198.19.255.255', 'internal'],
    ['192.0.2.1', 'internal'],
    ['198.51.100.7', 'internal'],
    ['203.0.113.9', 'internal'],
    ['2001:db8::1', 'internal'],
    ['fc00::1', 'internal'],
    ['fd12:3456:789a::1', 'internal'],
    ['fe80::1', 'internal'],
    ['fe80::1%eth0', 'internal'],
    ['febf::1', 'internal'],
    ['::ffff:10.0.0.1', 'internal'],
    ['::ffff:192.168.0.1', 'internal'],
    ['64:ff9b::a00:1', 'internal'],
    ['2002:c0a8:101::1', 'internal'],
    ['2001::1', 'internal'],
    ['224.0.0.1', 'never'],
    ['239.255.255.250', 'never'],
    ['255.255.255.255', 'never'],
    ['240.0.0.1', 'never'],
    ['ff02::1', 'never'],
    ['::127.0.0.1', 'loopback'],
    ['1::', 'never'],
    ['not-an-ip', 'never'],
    ['', 'never'],
    ['010.0.0.1', 'never'],
    ['127.1', 'never'],
  ];

  it.each(table)('%s is %s', (ip, kind) => {
    expect(isForbiddenAddress(ip, STRICT)).toBe(kind !== 'public');
    expect(isForbiddenAddress(ip, LOOPBACK)).toBe(kind === 'internal' || kind === 'never');
    expect(isForbiddenAddress(ip, PRIVATE)).toBe(kind === 'loopback' || kind === 'never');
    expect(isForbiddenAddress(ip, BOTH)).toBe(kind === 'never');
  });

  it('covers both address families with enough cases', () => {
    expect(table.length).toBeGreaterThanOrEqual(30);
    expect(table.filter(([ip]) => ip.includes(':')).length).toBeGreaterThanOrEqual(10);
  });

  it('checks the edges of the private ranges', () => {
    expect(isForbiddenAddress('172.15.255.255', STRICT)).toBe(false);
    expect(isForbiddenAddress('172.32.0.0', STRICT)).toBe(false);
    expect(isForbiddenAddress('100.63.255.255', STRICT)).toBe(false);
    expect(isForbiddenAddress('100.128.0.0', STRICT)).toBe(false);
    expect(isForbiddenAddress('198.17.255.255', STRICT)).toBe(false);
    expect(isForbiddenAddress('198.20.0.0', STRICT)).toBe(false);
    expect(isForbiddenAddress('fbff::1', STRICT)).toBe(true); // outside fc00::/7 but also outside 2000::/3
    expect(isForbiddenAddress('fec0::1', STRICT)).toBe(true);
  });
});

describe('checkWebhookUrl', () => {
  const refusals: Array<[string, string]> = [
    ['ftp://example.com/hook', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    ['javascript:alert(1)', 'scheme'],
    ['data:text/plain,hi', 'scheme'],
    ['not a url', 'malformed'],
    ['/relative/path', 'relative'],
    ['https://user:pass@example.com/hook', 'credentials'],
    ['https://user@example.com/hook', 'username only'],
    ['http://[::1]/hook', 'IPv6 loopback'],
    ['http://[::1]:8080/hook', 'IPv6 loopback with port'],
    ['http://127.0.0.1/hook', 'loopback'],
    ['http://127.0.0.1./hook', 'loopback with trailing dot'],
    ['http://127.1/hook', 'short IPv4'],
    ['http://2130706433/', 'decimal IPv4'],
    ['http://0x7f000001/', 'hex IPv4'],
    ['http://0x7f.1/', 'hex short IPv4'],
    ['http://017700000001/', 'octal IPv4'],
    ['http://%31%32%37.0.0.1/', 'percent-encoded IPv4'],
    ['http://0/', 'zero'],
    ['http://0.0.0.0:8080/', 'unspecified'],
    ['http://169.254.169.254/latest/meta-data/', 'metadata'],
    ['http://localhost/hook', 'localhost'],
    ['http://LOCALHOST./hook', 'localhost, upper case with trailing dot'],
    ['http://foo.localhost/hook', 'subdomain of localhost'],
    ['http://10.0.0.1/hook', 'RFC 1918'],
    ['http://192.168.0.10:3000/hook', 'RFC 1918 with port'],
    ['http://[::ffff:127.0.0.1]/hook', 'IPv4-mapped loopback'],
    ['http://[::ffff:a00:1]/hook', 'IPv4-mapped private'],
    ['http://[fe80::1]/hook', 'IPv6 link-local'],
    ['http://[fd00::1]/hook', 'IPv6 unique local'],
  ];

  it.each(refusals)('refuses %s (%s)', (url) => {
    const err = caught(() => checkWebhookUrl(url, STRICT));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(err.retryable).toBe(false);
    expect(err.status).toBe(400);
  });

  it.each([
    ['https://example.com/hook', 'https://example.com/hook'],
    ['http://example.com:8080/a?b=c', 'http://example.com:8080/a?b=c'],
    ['HTTPS://Hooks.Example.COM/X', 'https://hooks.example.com/X'],
    ['https://8.8.8.8/hook', 'https://8.8.8.8/hook'],
    ['https://[2606:4700::1]/hook', 'https://[2606:4700::1]/hook'],
    ['https://localhost.example.com/hook', 'https://localhost.example.com/hook'],
    ['https://xn--bcher-kva.example/hook', 'https://xn--bcher-kva.example/hook'],
  ])('accepts %s', (url, href) => {
    const parsed = checkWebhookUrl(url, STRICT);
    expect(parsed).toBeInstanceOf(URL);
    expect(parsed.href).toBe(href);
  });

  it('accepts exactly 2048 characters and refuses 2049', () => {
    const base = 'https://example.com/';
    expect(checkWebhookUrl(base + 'a'.repeat(2048 - base.length), STRICT).href).toHaveLength(2048);
    const err = caught(() => checkWebhookUrl(base + 'a'.repeat(2049 - base.length), STRICT));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(err.details).toMatchObject({ reason: 'too long', length: 2049 });
  });

  it('lets loopback through only with allowLoopback, and private ranges only with allowPrivate', () => {
    expect(checkWebhookUrl('http://127.0.0.1:3000/hook', LOOPBACK).hostname).toBe('127.0.0.1');
    expect(checkWebhookUrl('http://[::1]:3000/hook', LOOPBACK).hostname).toBe('[::1]');
    expect(checkWebhookUrl('http://localhost:3000/hook', LOOPBACK).hostname).toBe('localhost');
    expect(caught(() => checkWebhookUrl('http://10.0.0.1/hook', LOOPBACK)).code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(checkWebhookUrl('http://10.0.0.1/hook', PRIVATE).hostname).toBe('10.0.0.1');
    expect(checkWebhookUrl('http://[fe80::1]/hook', PRIVATE).hostname).toBe('[fe80::1]');
    expect(caught(() => checkWebhookUrl('http://localhost/hook', PRIVATE)).code).toBe('WEBHOOK_URL_FORBIDDEN');
    // Metadata and unspecified addresses stay closed whatever the policy.
    expect(caught(() => checkWebhookUrl('http://169.254.169.254/', BOTH)).code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(caught(() => checkWebhookUrl('http://0.0.0.0/', BOTH)).code).toBe('WEBHOOK_URL_FORBIDDEN');
  });

  it.each([
    ['http://metadata.google.internal/computeMetadata/v1/', 'GCP metadata name'],
    ['http://METADATA.GOOGLE.INTERNAL./computeMetadata/v1/', 'GCP metadata name, upper case with trailing dot'],
    ['http://instance-data/latest/meta-data/', 'AWS metadata name (one label)'],
    ['http://instance-data.ec2.internal/latest/', 'AWS metadata name (qualified)'],
    ['http://metadata/computeMetadata/v1/', 'one-label name'],
    ['http://printer.local/hook', 'mDNS name'],
    ['http://router.home.arpa/hook', 'home network name'],
  ])('refuses the private-by-definition name %s (%s) without DNS', (url) => {
    const err = caught(() => checkWebhookUrl(url, STRICT));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(err.details).toMatchObject({ kind: 'internal' });
    // An on-prem deployment that allows private receivers lets the name through to the resolver, which judges it.
    expect(checkWebhookUrl(url, PRIVATE)).toBeInstanceOf(URL);
  });

  it('keeps the URL and credentials out of the error details', () => {
    const err = caught(() => checkWebhookUrl('https://user:hunter2@example.com/hook?token=s3cret', STRICT));
    expect(JSON.stringify(err.toJSON())).not.toMatch(/hunter2|s3cret/);
  });
});

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestServer {
  url: string;
  port: number;
  received: Received[];
  connections: number;
  close(): Promise<void>;
}

const servers: TestServer[] = [];

/** A receiver on loopback only; `handler` answers after the body has been read. */
async function startServer(
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  host = '127.0.0.1',
): Promise<TestServer> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      handler(req, res);
    });
  });
  const state: TestServer = {
    url: '',
    port: 0,
    received,
    connections: 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  server.on('connection', () => {
    state.connections++;
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://${host.includes(':') ? `[${host}]` : host}:${state.port}`;
  servers.push(state);
  return state;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

function headersOf(r: Received): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** A resolver for names that do not exist, answering from a fixed table and counting calls. */
function fakeResolver(table: Record<string, string[]>): HostResolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = async (hostname: string) => {
    calls.push(hostname);
    const addresses = table[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(resolve, { calls });
}

describe('deliverWebhook', () => {
  const secret = generateWebhookSecret();
  const payload = { deliveryId: 'dlv_1', eventId: 'evt_1', type: 'job.completed', data: { jobId: 'job_1', text: 'héllo ✓' } };

  function delivery(url: string, policy: AddressPolicy = LOOPBACK, extra: Partial<Delivery> = {}): Delivery {
    return { url, secret, messageId: 'msg_2f1c', payload, timeoutMs: 2_000, policy, ...extra };
  }

  it('generates whsec_ secrets that standardwebhooks accepts', () => {
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(generateWebhookSecret()).not.toBe(secret);
    expect(() => new Webhook(secret)).not.toThrow();
  });

  it('posts a signed JSON body that the receiver verifies with standardwebhooks', async () => {
    const server = await startServer((_req, res) => res.writeHead(204).end());
    const outcome = await deliverWebhook(delivery(`${server.url}/hooks/in?x=1`));

    expect(outcome.status).toBe(204);
    expect(outcome.durationMs).toBeGreaterThanOrEqual(0);
    expect(server.received).toHaveLength(1);
    const [req] = server.received as [Received];
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/hooks/in?x=1');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['webhook-id']).toBe('msg_2f1c');
    expect(req.headers['webhook-timestamp']).toMatch(/^\d+$/);
    expect(Math.abs(Number(req.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(10);
    expect(req.headers['webhook-signature']).toMatch(/^v1,/);
    expect(req.headers.host).toBe(`127.0.0.1:${server.port}`);
    expect(req.body).toBe(JSON.stringify(payload));
    expect(new Webhook(secret).verify(req.body, headersOf(req))).toEqual(payload);
    // A different secret or a changed body does not verify.
    expect(() => new Webhook(generateWebhookSecret()).verify(req.body, headersOf(req))).toThrow();
    expect(() => new Webhook(secret).verify(req.body.replace('job_1', 'job_2'), headersOf(req))).toThrow();
  });

  it('refuses a loopback URL before connecting when loopback is not allowed', async () => {
    const server = await startServer((_req, res) => res.writeHead(200).end());
    const err = await rejected(deliverWebhook(delivery(`${server.url}/hook`, STRICT)));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(err.retryable).toBe(false);
    expect(server.connections).toBe(0);
    expect(server.received).toHaveLength(0);
  });

  it("refuses 'localhost' when loopback is not allowed, and reaches it through the system resolver when it is", async () => {
    const server = await startServer((_req, res) => res.writeHead(200).end('ok'));
    const err = await rejected(deliverWebhook(delivery(`http://localhost:${server.port}/hook`, PRIVATE)));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(server.connections).toBe(0);

    const outcome = await deliverWebhook(delivery(`http://localhost:${server.port}/hook`, LOOPBACK));
    expect(outcome.status).toBe(200);
    expect(server.received[0]?.headers.host).toBe(`localhost:${server.port}`);
  });

  it('refuses a name whose DNS answer is loopback when loopback is not allowed, without connecting', async () => {
    const server = await startServer((_req, res) => res.writeHead(200).end());
    const resolve = fakeResolver({ 'hooks.customer.test': ['127.0.0.1'] });
    const err = await rejected(deliverWebhook(delivery(`http://hooks.customer.test:${server.port}/hook`, PRIVATE), { resolve }));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(err.retryable).toBe(false);
    expect(err.details).toMatchObject({ host: 'hooks.customer.test', address: '127.0.0.1', kind: 'loopback' });
    expect(resolve.calls).toEqual(['hooks.customer.test']);
    expect(server.connections).toBe(0);
  });

  it('refuses when any one of the resolved addresses is forbidden', async () => {
    const server = await startServer((_req, res) => res.writeHead(200).end());
    // 0.0.0.0 would also land on this machine; it is refused under every policy.
    const resolve = fakeResolver({ 'mixed.customer.test': ['127.0.0.1', '0.0.0.0'] });
    const err = await rejected(deliverWebhook(delivery(`http://mixed.customer.test:${server.port}/hook`, LOOPBACK), { resolve }));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect(err.details).toMatchObject({ address: '0.0.0.0', kind: 'never' });
    expect(server.connections).toBe(0);
  });

  it('connects to the checked address while keeping the Host header, resolving only once', async () => {
    const server = await startServer((_req, res) => res.writeHead(202).end());
    const resolve = fakeResolver({ 'pinned.customer.test': ['127.0.0.1'] });
    const outcome = await deliverWebhook(delivery(`http://pinned.customer.test:${server.port}/hook`, LOOPBACK), { resolve });
    expect(outcome.status).toBe(202);
    expect(resolve.calls).toEqual(['pinned.customer.test']);
    expect(server.received[0]?.headers.host).toBe(`pinned.customer.test:${server.port}`);
    expect(new Webhook(secret).verify(server.received[0]!.body, headersOf(server.received[0]!))).toEqual(payload);
  });

  it('fails retryably when the name does not resolve', async () => {
    const resolve = fakeResolver({});
    const err = await rejected(deliverWebhook(delivery('http://gone.customer.test/hook', LOOPBACK), { resolve }));
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ host: 'gone.customer.test' });
  });

  it('does not follow a redirect, and fails with the 3xx status', async () => {
    const target = await startServer((_req, res) => res.writeHead(200).end());
    const server = await startServer((_req, res) => res.writeHead(302, { location: `${target.url}/elsewhere` }).end());
    const err = await rejected(deliverWebhook(delivery(`${server.url}/hook`)));
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(err.details).toMatchObject({ status: 302 });
    expect(server.received).toHaveLength(1);
    expect(target.connections).toBe(0);
    expect(target.received).toHaveLength(0);
  });

  it('fails retryably on a 500, with the status and duration in the details', async () => {
    const server = await startServer((_req, res) => res.writeHead(500).end('boom'));
    const err = await rejected(deliverWebhook(delivery(`${server.url}/hook`)));
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ status: 500 });
    expect(typeof err.details?.durationMs).toBe('number');
  });

  it('fails on a 4xx', async () => {
    const server = await startServer((_req, res) => res.writeHead(410).end());
    const err = await rejected(deliverWebhook(delivery(`${server.url}/hook`)));
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(err.details).toMatchObject({ status: 410 });
  });

  it('times out a receiver that never answers, within timeoutMs plus slack', async () => {
    const server = await startServer(() => {
      // Never answers.
    });
    const started = Date.now();
    const err = await rejected(deliverWebhook(delivery(`${server.url}/hook`, LOOPBACK, { timeoutMs: 300 })));
    const took = Date.now() - started;
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ reason: 'timed out', timeoutMs: 300 });
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(300 + 1_000);
    expect(server.received).toHaveLength(1);
  });

  it('times out a receiver that sends headers and then stalls the body', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    });
    const started = Date.now();
    const err = await rejected(deliverWebhook(delivery(`${server.url}/hook`, LOOPBACK, { timeoutMs: 300 })));
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(Date.now() - started).toBeLessThan(300 + 1_000);
  });

  it('times out a resolver that never answers', async () => {
    const resolve: HostResolver = () => new Promise(() => undefined);
    const started = Date.now();
    const err = await rejected(deliverWebhook(delivery('http://slow-dns.customer.test/hook', LOOPBACK, { timeoutMs: 200 }), { resolve }));
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(err.details).toMatchObject({ reason: 'timed out' });
    expect(Date.now() - started).toBeLessThan(200 + 1_000);
  });

  it('stops reading a huge answer after the cap and still counts the 2xx', async () => {
    const server = await startServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(16 * 1024, 'x');
      // 8 MiB, far more than the cap; the write errors once the client hangs up.
      let left = 512;
      const pump = (): void => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      res.on('error', () => undefined);
      pump();
    });
    const outcome = await deliverWebhook(delivery(`${server.url}/hook`, LOOPBACK, { timeoutMs: 5_000 }));
    expect(outcome.status).toBe(200);
  });

  it('fails retryably when nothing listens on the port', async () => {
    const server = await startServer((_req, res) => res.writeHead(200).end());
    const url = `${server.url}/hook`;
    await server.close();
    const err = await rejected(deliverWebhook(delivery(url)));
    expect(err.code).toBe('WEBHOOK_DELIVERY_FAILED');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ reason: 'ECONNREFUSED' });
  });

  it('delivers to an IPv6 loopback literal when ::1 is available', async (ctx) => {
    let server: TestServer;
    try {
      server = await startServer((_req, res) => res.writeHead(200).end(), '::1');
    } catch {
      ctx.skip();
      return;
    }
    const outcome = await deliverWebhook(delivery(`${server.url}/hook`));
    expect(outcome.status).toBe(200);
    expect(server.received[0]?.headers.host).toBe(`[::1]:${server.port}`);
    const err = await rejected(deliverWebhook(delivery(`${server.url}/hook`, STRICT)));
    expect(err.code).toBe('WEBHOOK_URL_FORBIDDEN');
  });

  it('refuses non-http schemes and credentials at delivery too', async () => {
    expect((await rejected(deliverWebhook(delivery('ftp://127.0.0.1/hook')))).code).toBe('WEBHOOK_URL_FORBIDDEN');
    expect((await rejected(deliverWebhook(delivery('http://a:b@127.0.0.1/hook')))).code).toBe('WEBHOOK_URL_FORBIDDEN');
  });

  it('treats a payload that is not JSON-serialisable or a bad secret as a bug, not a retry', async () => {
    const server = await startServer((_req, res) => res.writeHead(200).end());
    const undef = await rejected(deliverWebhook(delivery(`${server.url}/hook`, LOOPBACK, { payload: undefined })));
    expect(undef.code).toBe('INTERNAL');
    const badSecret = await rejected(deliverWebhook(delivery(`${server.url}/hook`, LOOPBACK, { secret: 'whsec_' })));
    expect(badSecret.code).toBe('INTERNAL');
    const badId = await rejected(deliverWebhook(delivery(`${server.url}/hook`, LOOPBACK, { messageId: 'a\r\nb' })));
    expect(badId.code).toBe('INTERNAL');
    expect(server.connections).toBe(0);
  });
});

describe('WebhookTargets (the check at submission)', () => {
  /** A resolver answering from a table; names not in it do not exist. */
  const table = (t: Record<string, string[]>): HostResolver => async (hostname) => {
    const addresses = t[hostname];
    if (!addresses) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' });
    return addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const dns = table({
    'metadata.attacker.example': ['169.254.169.254'],
    'rebind.attacker.example': ['127.0.0.1'],
    'lan.attacker.example': ['10.1.2.3'],
    'mixed.attacker.example': ['93.184.216.34', 'fd00::5'],
    'v6.attacker.example': ['::ffff:169.254.169.254'],
    'hooks.customer.example': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
    'metadata.google.internal': ['169.254.169.254'],
  });
  const refusedAs = async (targets: WebhookTargets, url: string) => {
    const err = await targets.check(url).then(
      () => undefined,
      (e: unknown) => e as AppError,
    );
    return err ? { code: err.code, kind: err.details?.kind } : 'accepted';
  };

  it.each([
    ['http://metadata.attacker.example/latest', 'never'],
    ['http://rebind.attacker.example/hook', 'loopback'],
    ['http://lan.attacker.example/hook', 'internal'],
    ['https://mixed.attacker.example/hook', 'internal'],
    ['https://v6.attacker.example/hook', 'never'],
  ])('refuses %s at submission: it resolves to a %s address', async (url, kind) => {
    expect(await refusedAs(new WebhookTargets(STRICT, { resolve: dns }), url)).toEqual({ code: 'WEBHOOK_URL_FORBIDDEN', kind });
  });

  it('judges resolved addresses by the same policy as delivery: allowPrivate lets a LAN name through, never metadata', async () => {
    const onPrem = new WebhookTargets(PRIVATE, { resolve: dns });
    expect(await refusedAs(onPrem, 'http://lan.attacker.example/hook')).toBe('accepted');
    expect(await refusedAs(onPrem, 'http://metadata.google.internal/computeMetadata/v1/')).toEqual({ code: 'WEBHOOK_URL_FORBIDDEN', kind: 'never' });
    expect(await refusedAs(onPrem, 'http://rebind.attacker.example/hook')).toEqual({ code: 'WEBHOOK_URL_FORBIDDEN', kind: 'loopback' });
  });

  it('accepts a public name, and a name that does not resolve now (delivery resolves it again)', async () => {
    const targets = new WebhookTargets(STRICT, { resolve: dns });
    expect(await refusedAs(targets, 'https://hooks.customer.example/hook')).toBe('accepted');
    expect(await refusedAs(targets, 'https://not-yet-published.customer.example/hook')).toBe('accepted');
  });

  it('resolves through the hosts file, as delivery does: this machine\'s own name is refused', async () => {
    const self = os.hostname();
    const addresses = await systemResolver(self).catch(() => []);
    const forbidden = addresses.some((a) => isForbiddenAddress(a.address, PRIVATE));
    // The name has one label (refused without DNS under STRICT); under allowPrivate only its addresses can refuse it.
    expect(await refusedAs(new WebhookTargets(STRICT), `http://${self}/hook`)).toMatchObject({ code: 'WEBHOOK_URL_FORBIDDEN' });
    if (forbidden) expect(await refusedAs(new WebhookTargets(PRIVATE), `http://${self}:8080/hook`)).toMatchObject({ code: 'WEBHOOK_URL_FORBIDDEN' });
  });

  it('lets a name through after timeoutMs when the resolver is slow, and never holds more than maxLookups lookups', async () => {
    let calls = 0;
    const answers: ((a: { address: string; family: number }[]) => void)[] = [];
    const slow: HostResolver = () => {
      calls++;
      return new Promise((resolve) => answers.push(resolve));
    };
    const targets = new WebhookTargets(STRICT, { resolve: slow, timeoutMs: 100, maxLookups: 2 });
    const started = Date.now();
    expect(await refusedAs(targets, 'http://slow1.attacker.example/hook')).toBe('accepted');
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await refusedAs(targets, 'http://slow2.attacker.example/hook')).toBe('accepted');
    // Both lookups still hold their threads: a third name is not looked up at all.
    expect(await refusedAs(targets, 'http://slow3.attacker.example/hook')).toBe('accepted');
    expect(calls).toBe(2);
    // Once they answer, lookups are made again; a late answer of a forbidden address refuses nothing already accepted.
    for (const answer of answers) answer([{ address: '127.0.0.1', family: 4 }]);
    await new Promise((r) => setTimeout(r, 10));
    const fast = new WebhookTargets(STRICT, { resolve: dns, maxLookups: 2 });
    expect(await refusedAs(fast, 'http://rebind.attacker.example/hook')).toMatchObject({ code: 'WEBHOOK_URL_FORBIDDEN' });
    expect(await refusedAs(targets, 'http://slow4.attacker.example/hook')).toBe('accepted');
    expect(calls).toBe(3);
  });

  it('judges IP literals without a lookup', async () => {
    let calls = 0;
    const counting: HostResolver = async () => {
      calls++;
      return [];
    };
    const targets = new WebhookTargets(STRICT, { resolve: counting });
    expect(await refusedAs(targets, 'http://[::ffff:127.0.0.1]/hook')).toMatchObject({ code: 'WEBHOOK_URL_FORBIDDEN' });
    expect(await refusedAs(targets, 'https://8.8.8.8/hook')).toBe('accepted');
    expect(calls).toBe(0);
  });
});
