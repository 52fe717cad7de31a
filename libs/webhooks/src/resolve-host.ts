import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import { AppError } from '@lib/shared';
import { classifyAddress, isForbiddenKind, type AddressPolicy } from './address-policy.js';
import { bareHostname, checkWebhookUrl } from './webhook-url.js';

/** Resolves a host name to every address it has, like `dns.lookup(host, { all: true })`. */
export type HostResolver = (hostname: string) => Promise<LookupAddress[]>;

/** The system resolver (getaddrinfo: the hosts file, then DNS), as the socket that sends a webhook would use it. */
export const systemResolver: HostResolver = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

/**
 * Throws WEBHOOK_URL_FORBIDDEN (not retryable) when any address `host` resolved to is forbidden under `policy`: the one
 * judgement of resolved addresses, made at submission and at delivery.
 */
export function assertResolvedAllowed(host: string, addresses: readonly LookupAddress[], policy: AddressPolicy): void {
  for (const { address } of addresses) {
    const kind = classifyAddress(address);
    if (isForbiddenKind(kind, policy)) {
      throw new AppError('WEBHOOK_URL_FORBIDDEN', `webhook URL refused: ${host} resolves to a ${kind} address`, {
        reason: `resolves to a ${kind} address`,
        host,
        address,
        kind,
      });
    }
  }
}

export interface WebhookTargetsOptions {
  /** Replaces the system resolver (tests). */
  resolve?: HostResolver;
  /** How long a submission waits for its lookup; past it the name is let through (delivery judges it). Default 2000. */
  timeoutMs?: number;
  /**
   * Lookups in flight at once. `dns.lookup` holds one of libuv's threads (4 by default, shared with file I/O) until the
   * resolver answers, so a flood of slow names must not take them all; when all are taken the name is let through
   * without a lookup (delivery judges it). Default 2.
   */
  maxLookups?: number;
}

/**
 * The webhook check at submission: checkWebhookUrl (the URL, IP literals, special-use names), then the host name
 * resolved as delivery will resolve it (the hosts file included) and every address judged by the same policy, so a
 * name that resolves to a forbidden address is refused with 400 at once rather than failing at delivery. A name that
 * cannot be resolved now, or not within `timeoutMs`, is let through: its DNS may be published later, and delivery
 * resolves it again, refuses what is forbidden then, and pins the connection to the checked address.
 */
export class WebhookTargets {
  private readonly resolve: HostResolver;
  private readonly timeoutMs: number;
  private readonly maxLookups: number;
  private inFlight = 0;

  constructor(
    readonly policy: AddressPolicy,
    options: WebhookTargetsOptions = {},
  ) {
    this.resolve = options.resolve ?? systemResolver;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.maxLookups = options.maxLookups ?? 2;
  }

  async check(url: string): Promise<URL> {
    const parsed = checkWebhookUrl(url, this.policy);
    const host = bareHostname(parsed);
    if (isIP(host) !== 0 || this.inFlight >= this.maxLookups) return parsed;
    this.inFlight++;
    const lookup = this.resolve(host).then(
      (addresses) => addresses,
      () => null,
    );
    void lookup.finally(() => this.inFlight--);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), this.timeoutMs);
      timer.unref();
    });
    const addresses = await Promise.race([lookup, timeout]).finally(() => clearTimeout(timer));
    if (addresses) assertResolvedAllowed(host, addresses, this.policy);
    return parsed;
  }
}
