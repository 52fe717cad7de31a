import { isIPv4, isIPv6 } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Which internal destinations a deployment lets webhooks reach; both false in any shared or cloud deployment. */
export interface AddressPolicy {
  /** Lets loopback (127.0.0.0/8, ::1, `localhost`) through, for local development and tests. */
  allowLoopback: boolean;
  /** Lets the other internal ranges through (RFC 1918, ULA, link-local, CGNAT, benchmarking, documentation), for on-prem receivers. */
  allowPrivate: boolean;
}

/**
 * - `public`: globally routable unicast.
 * - `loopback`: this machine; only `allowLoopback` lets it through.
 * - `internal`: not globally routable; only `allowPrivate` lets it through.
 * - `never`: no policy lets it through. Unspecified addresses connect to this machine on Linux (0.0.0.0 is a classic
 *   loopback bypass), multicast/broadcast/reserved space is never a receiver, and cloud metadata endpoints hand out
 *   credentials, so an on-prem `allowPrivate` must not open them.
 */
export type AddressKind = 'public' | 'loopback' | 'internal' | 'never';

type Ip = ipaddr.IPv4 | ipaddr.IPv6;

interface Range {
  cidr: [Ip, number];
  kind: Exclude<AddressKind, 'public'>;
}

function range(cidr: string, kind: Range['kind']): Range {
  return { cidr: ipaddr.parseCIDR(cidr), kind };
}

/** True when `ip` lies in `r`; an address of the other family never does (ipaddr.js would throw). */
function inRange(ip: Ip, r: Range): boolean {
  const [net, bits] = r.cidr;
  return ip.kind() === net.kind() && (ip as ipaddr.IPv4).match(net as ipaddr.IPv4, bits);
}

// First match wins, so the metadata hosts come before the ranges that hold them.
const V4_RANGES: readonly Range[] = [
  range('169.254.169.254/32', 'never'), // AWS, GCP, Azure, OCI, DigitalOcean instance metadata
  range('169.254.170.2/32', 'never'), // ECS task metadata and credentials
  range('100.100.100.200/32', 'never'), // Alibaba Cloud instance metadata
  range('0.0.0.0/8', 'never'), // "this network"; 0.0.0.0 reaches loopback on Linux
  range('127.0.0.0/8', 'loopback'),
  range('10.0.0.0/8', 'internal'),
  range('100.64.0.0/10', 'internal'), // CGNAT shared address space
  range('169.254.0.0/16', 'internal'), // link-local
  range('172.16.0.0/12', 'internal'),
  range('192.0.0.0/24', 'internal'), // IETF protocol assignments
  range('192.0.2.0/24', 'internal'), // TEST-NET-1
  range('192.88.99.0/24', 'internal'), // deprecated 6to4 relay anycast
  range('192.168.0.0/16', 'internal'),
  range('198.18.0.0/15', 'internal'), // benchmarking
  range('198.51.100.0/24', 'internal'), // TEST-NET-2
  range('203.0.113.0/24', 'internal'), // TEST-NET-3
  range('224.0.0.0/4', 'never'), // multicast
  range('240.0.0.0/4', 'never'), // reserved, including 255.255.255.255 broadcast
];

const V6_RANGES: readonly Range[] = [
  range('fd00:ec2::254/128', 'never'), // AWS instance metadata over IPv6
  range('::/128', 'never'), // unspecified
  range('::1/128', 'loopback'),
  range('64:ff9b:1::/48', 'internal'), // local-use NAT64
  range('100::/64', 'internal'), // discard-only
  range('2001::/23', 'internal'), // IETF protocol assignments: Teredo, benchmarking 2001:2::/48, ORCHID
  range('2001:db8::/32', 'internal'), // documentation
  range('3fff::/20', 'internal'), // documentation (RFC 9637)
  range('5f00::/16', 'internal'), // SRv6 SIDs
  range('fc00::/7', 'internal'), // unique local
  range('fe80::/10', 'internal'), // link-local
  range('fec0::/10', 'internal'), // deprecated site-local
  range('ff00::/8', 'never'), // multicast
];

const GLOBAL_UNICAST_V6 = range('2000::/3', 'never');

/** Ranges whose last or middle 32 bits carry an IPv4 address that the packet really goes to. */
const V4_IN_V6: readonly { r: Range; offset: number; ifPublic: AddressKind }[] = [
  { r: range('::ffff:0:0/96', 'never'), offset: 12, ifPublic: 'public' }, // IPv4-mapped
  { r: range('::ffff:0:0:0/96', 'never'), offset: 12, ifPublic: 'public' }, // IPv4-translated (SIIT)
  { r: range('64:ff9b::/96', 'never'), offset: 12, ifPublic: 'public' }, // well-known NAT64 prefix
  { r: range('2002::/16', 'never'), offset: 2, ifPublic: 'public' }, // 6to4
  // Deprecated IPv4-compatible form (::a.b.c.d); nothing routes it to a public host, so it is never a receiver.
  { r: range('::/96', 'never'), offset: 12, ifPublic: 'never' },
];

function classifyV4(ip: ipaddr.IPv4): AddressKind {
  return V4_RANGES.find((r) => inRange(ip, r))?.kind ?? 'public';
}

function classifyV6(ip: ipaddr.IPv6): AddressKind {
  const exact = V6_RANGES.find((r) => inRange(ip, r));
  if (exact && exact.cidr[1] === 128) return exact.kind; // ::, ::1 and the metadata host sit inside ::/96 and fc00::/7
  for (const { r, offset, ifPublic } of V4_IN_V6) {
    if (inRange(ip, r)) {
      const kind = classifyV4(ipaddr.fromByteArray(ip.toByteArray().slice(offset, offset + 4)) as ipaddr.IPv4);
      return kind === 'public' ? ifPublic : kind;
    }
  }
  if (exact) return exact.kind;
  // Everything outside 2000::/3 is unallocated or special-purpose today.
  return inRange(ip, GLOBAL_UNICAST_V6) ? 'public' : 'never';
}

/**
 * Classifies an IP address string (IPv4 dotted quad or IPv6, with or without brackets and zone id). Anything that is
 * not a valid address is `never`: the caller asked about something it cannot safely connect to. `net.isIPv4` decides
 * what counts as IPv4 before ipaddr.js parses it: ipaddr.js also reads octal, hex and short forms (`0x7f.1`), which
 * resolvers disagree on, and those stay `never`.
 */
export function classifyAddress(ip: string): AddressKind {
  let text = ip.trim();
  if (text.startsWith('[') && text.endsWith(']')) text = text.slice(1, -1);
  if (isIPv4(text)) return classifyV4(ipaddr.IPv4.parse(text));
  const zone = text.indexOf('%');
  if (zone !== -1) text = text.slice(0, zone);
  if (isIPv6(text)) return classifyV6(ipaddr.IPv6.parse(text));
  return 'never';
}

/** True when `kind` may not be reached under `policy`. */
export function isForbiddenKind(kind: AddressKind, policy: AddressPolicy): boolean {
  switch (kind) {
    case 'public':
      return false;
    case 'loopback':
      return !policy.allowLoopback;
    case 'internal':
      return !policy.allowPrivate;
    case 'never':
      return true;
  }
}

/**
 * True when the IP (v4 or v6, including IPv4-mapped, NAT64 and 6to4 forms) is loopback, unspecified, private,
 * link-local, CGNAT, multicast, broadcast, benchmarking, documentation or otherwise not globally routable, and the
 * policy does not allow it. Invalid input is forbidden. Cloud metadata endpoints and unspecified, multicast and
 * reserved addresses are forbidden under every policy.
 */
export function isForbiddenAddress(ip: string, policy: AddressPolicy): boolean {
  return isForbiddenKind(classifyAddress(ip), policy);
}
