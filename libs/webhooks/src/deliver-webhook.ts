import { randomBytes } from 'node:crypto';
import type { LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction, type TcpNetConnectOpts } from 'node:net';
import { performance } from 'node:perf_hooks';
import { AppError, isAppError } from '@lib/shared';
import { Webhook } from 'standardwebhooks';
import type { AddressPolicy } from './address-policy.js';
import { assertResolvedAllowed, systemResolver, type HostResolver } from './resolve-host.js';
export type { HostResolver } from './resolve-host.js';
import { bareHostname, checkWebhookUrl } from './webhook-url.js';

/** How much of a receiver's answer is read before the connection is dropped; the body itself is never used. */
export const MAX_RESPONSE_BODY_BYTES = 64 * 1024;

/** One attempt to send one event to one subscriber. */
export interface Delivery {
  /** The subscriber's endpoint, as stored; checked again here because the policy or the URL may have changed. */
  url: string;
  /** The subscription's signing secret, `whsec_` followed by base64. */
  secret: string;
  /** Sent as `webhook-id`; the same for every retry of one delivery so receivers can dedupe. */
  messageId: string;
  /** The event; sent as `JSON.stringify(payload)`. */
  payload: unknown;
  /** Limit for the whole attempt: DNS, connect, request and reading the answer. */
  timeoutMs: number;
  /** Which internal destinations this deployment may reach. */
  policy: AddressPolicy;
}

/** A receiver that answered 2xx. */
export interface DeliveryOutcome {
  /** The HTTP status the receiver answered with. */
  status: number;
  /** From the start of the attempt (DNS included) until the answer was read or cut off. */
  durationMs: number;
}

/** Seams for tests; production passes nothing. */
export interface DeliverWebhookOptions {
  /** Replaces the system resolver, so tests can make a name resolve to anything without touching DNS. */
  resolve?: HostResolver;
}

/** Generates a new signing secret: `whsec_` and 32 random bytes in base64, the form standardwebhooks expects. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function failed(reason: string, details: Record<string, unknown>, cause?: unknown): AppError {
  return new AppError('WEBHOOK_DELIVERY_FAILED', `webhook delivery failed: ${reason}`, { reason, ...details }, { cause });
}

class AttemptTimeout extends Error {}

/** A `lookup` for the socket that answers only with the addresses already checked, so a second DNS answer cannot differ. */
function pinnedLookup(addresses: readonly LookupAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) callback(null, [...addresses]);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  };
}

function signedRequest(d: Delivery): { body: string; headers: Record<string, string> } {
  const body: unknown = JSON.stringify(d.payload);
  if (typeof body !== 'string') {
    throw new AppError('INTERNAL', 'webhook payload does not serialise to JSON (this is a bug)');
  }
  if (!/^[\x21-\x7e]{1,256}$/.test(d.messageId)) {
    throw new AppError('INTERNAL', 'webhook message id must be 1-256 printable ASCII characters (this is a bug)');
  }
  let webhook: Webhook;
  try {
    webhook = new Webhook(d.secret);
  } catch (err) {
    throw new AppError('INTERNAL', 'webhook secret is not a whsec_ base64 secret (this is a bug)', undefined, { cause: err });
  }
  const now = new Date();
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
      'user-agent': 'e2llm-webhooks/0.1',
      'webhook-id': d.messageId,
      'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
      'webhook-signature': webhook.sign(d.messageId, now, body),
    },
  };
}

/**
 * Sends one signed Standard Webhooks request and resolves on a 2xx answer.
 *
 * The host is resolved once and refused (WEBHOOK_URL_FORBIDDEN, not retryable) when any of its addresses is forbidden;
 * the socket then connects only to those checked addresses, keeping the Host header and TLS server name of the URL, so
 * a DNS answer that changes between check and connect (rebinding) cannot move the request. Redirects are never
 * followed: a 3xx, like any non-2xx, network error or timeout, is WEBHOOK_DELIVERY_FAILED (retryable), with the status
 * and duration in its details.
 */
export async function deliverWebhook(d: Delivery, options: DeliverWebhookOptions = {}): Promise<DeliveryOutcome> {
  const started = performance.now();
  const elapsed = (): number => Math.round(performance.now() - started);
  if (!Number.isFinite(d.timeoutMs) || d.timeoutMs <= 0) {
    throw new AppError('INTERNAL', `webhook timeout must be a positive number of ms, got ${d.timeoutMs} (this is a bug)`);
  }
  const url = checkWebhookUrl(d.url, d.policy);
  const { body, headers } = signedRequest(d);
  const host = bareHostname(url);

  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), d.timeoutMs);
  const deadline = new Promise<never>((_, reject) => {
    abort.signal.addEventListener('abort', () => reject(new AttemptTimeout()), { once: true });
  });
  // Raced below; this only keeps a late abort from counting as an unhandled rejection.
  deadline.catch(() => undefined);
  try {
    const addresses = await Promise.race([resolveChecked(host, d.policy, options.resolve ?? systemResolver), deadline]);
    return await Promise.race([send(url, host, addresses, body, headers, abort.signal, elapsed), deadline]);
  } catch (err) {
    if (err instanceof AttemptTimeout || abort.signal.aborted) {
      throw failed('timed out', { timeoutMs: d.timeoutMs, durationMs: elapsed() });
    }
    if (isAppError(err)) throw err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    throw failed(code ?? (err instanceof Error ? err.message : String(err)), { durationMs: elapsed() }, err);
  } finally {
    clearTimeout(timer);
  }
}

async function resolveChecked(host: string, policy: AddressPolicy, resolve: HostResolver): Promise<LookupAddress[]> {
  // IP literals and localhost were already judged by checkWebhookUrl; the socket connects to a literal without a lookup.
  const family = isIP(host);
  if (family !== 0) return [{ address: host, family }];
  let addresses: LookupAddress[];
  try {
    addresses = await resolve(host);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    throw failed(`cannot resolve host (${code ?? 'lookup failed'})`, { host }, err);
  }
  if (addresses.length === 0) throw failed('host has no addresses', { host });
  assertResolvedAllowed(host, addresses, policy);
  return addresses;
}

function send(
  url: URL,
  host: string,
  addresses: LookupAddress[],
  body: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  elapsed: () => number,
): Promise<DeliveryOutcome> {
  return new Promise<DeliveryOutcome>((resolve, reject) => {
    const isHttps = url.protocol === 'https:';
    const requestOptions: https.RequestOptions & Pick<TcpNetConnectOpts, 'autoSelectFamily'> = {
      method: 'POST',
      protocol: url.protocol,
      hostname: host,
      port: url.port === '' ? (isHttps ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: { ...headers, host: url.host },
      lookup: pinnedLookup(addresses),
      // Tries every checked address (dual-stack hosts) instead of only the first.
      autoSelectFamily: true,
      // A fresh connection per attempt: a pooled socket could belong to an earlier check under another policy.
      agent: false,
      // Aborting at the deadline destroys the socket; the caller has already rejected by then.
      signal,
      ...(isHttps && isIP(host) === 0 ? { servername: host } : {}),
    };
    const req = (isHttps ? https : http).request(requestOptions, (res) => {
      const status = res.statusCode ?? 0;
      let read = 0;
      const finish = (): void => {
        if (status >= 200 && status < 300) resolve({ status, durationMs: elapsed() });
        else if (status >= 300 && status < 400) reject(failed(`redirect not followed (${status})`, { status, durationMs: elapsed() }));
        else reject(failed(`receiver answered ${status}`, { status, durationMs: elapsed() }));
      };
      res.on('data', (chunk: Buffer) => {
        read += chunk.length;
        if (read >= MAX_RESPONSE_BODY_BYTES) {
          // Enough: the answer is judged by its status, and a receiver must not keep the worker reading.
          finish();
          res.destroy();
          req.destroy();
        }
      });
      res.on('end', finish);
      res.on('error', (err) => reject(failed('answer cut off', { status, durationMs: elapsed() }, err)));
      res.on('close', () => {
        if (!res.complete) reject(failed('answer cut off', { status, durationMs: elapsed() }));
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}
