import { isIP } from 'node:net';
import { AppError } from '@lib/shared';
import { classifyAddress, isForbiddenKind, type AddressKind, type AddressPolicy } from './address-policy.js';

/** Longest webhook URL accepted at submission, in UTF-16 code units of the string as given. */
export const MAX_WEBHOOK_URL_LENGTH = 2048;

function forbidden(reason: string, details: Record<string, unknown> = {}): AppError {
  return new AppError('WEBHOOK_URL_FORBIDDEN', `webhook URL refused: ${reason}`, { reason, ...details });
}

/** The URL's host without the brackets WHATWG keeps around IPv6 literals. */
export function bareHostname(url: URL): string {
  return url.hostname.startsWith('[') && url.hostname.endsWith(']') ? url.hostname.slice(1, -1) : url.hostname;
}

/**
 * Suffixes of names that are private by definition, whatever they resolve to here: `.internal` (ICANN's private-use
 * top-level domain, 2024: `metadata.google.internal`, `instance-data.ec2.internal`), `.local` (multicast DNS, RFC 6762)
 * and `.home.arpa` (RFC 8375).
 */
const PRIVATE_SUFFIXES = ['.internal', '.local', '.home.arpa'];

/**
 * What a host is without DNS: an IP literal is classified; `localhost` and `*.localhost` are loopback (RFC 6761 reserves
 * them and resolvers may answer them without DNS); a name of one label (`metadata`, `instance-data`, a container's own
 * name: no public name has no dot, they are answered by search domains and the hosts file) or under a private-use
 * suffix is `internal`; any other name is left to the resolver.
 */
export function hostKindWithoutDns(host: string): AddressKind | undefined {
  if (isIP(host) !== 0) return classifyAddress(host);
  const name = host.toLowerCase().replace(/\.+$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return 'loopback';
  if (!name.includes('.') || PRIVATE_SUFFIXES.some((s) => name.endsWith(s))) return 'internal';
  return undefined;
}

/**
 * The check without DNS, made at submission and again at delivery: an absolute http(s) URL of at most 2048 characters,
 * with a host and without credentials, whose host is not a forbidden IP literal, `localhost`, a one-label name or a
 * private-use name (see hostKindWithoutDns) under the policy. WHATWG parsing has already turned decimal, octal, hex
 * and short IPv4 forms (`http://2130706433/`, `http://0x7f.1/`) into dotted quads, so they are caught here too. Host
 * names are then resolved (WebhookTargets.check at submission, deliverWebhook at delivery). Returns the parsed URL.
 */
export function checkWebhookUrl(url: string, policy: AddressPolicy): URL {
  if (typeof url !== 'string') throw forbidden('not a string');
  if (url.length > MAX_WEBHOOK_URL_LENGTH) throw forbidden('too long', { length: url.length, max: MAX_WEBHOOK_URL_LENGTH });
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw forbidden('not an absolute URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw forbidden('scheme is not http or https', { scheme: parsed.protocol.replace(/:$/, '') });
  }
  if (parsed.username !== '' || parsed.password !== '') throw forbidden('URL carries credentials');
  const host = bareHostname(parsed);
  if (host === '') throw forbidden('no host');
  const kind = hostKindWithoutDns(host);
  if (kind !== undefined && isForbiddenKind(kind, policy)) throw forbidden(`host is a ${kind} address`, { host, kind });
  return parsed;
}
