import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { BadRequestError } from '../errors.ts';

/**
 * The one guard against server-side request forgery, for every outbound connection a user can aim:
 * webhook and Slack deliveries (`core/notify/`) and health-check probes (`core/health/`). Each caller
 * brings its own policy (whether private and loopback addresses are allowed) and its own error code.
 */

/** Why a target is refused; `code` is stable, `message` says which address and why. */
export class TargetRefused extends BadRequestError {
  constructor(detail: string, code = 'target-refused') {
    super(detail, code);
  }
}

export interface SsrfPolicy {
  /** Private (RFC 1918, fc00::/7, 100.64/10) and loopback addresses allowed. */
  allowPrivate: boolean;
  /** Added to the refusal of a private or loopback address: how to allow them, when there is a way. */
  privateHint?: string | undefined;
}

/** A `dns.lookup`-shaped resolver; tests pass their own to play a DNS change (rebinding). */
export type Resolve = (
  hostname: string,
  options: dns.LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void,
) => void;

export interface GuardOptions {
  /** Makes the error a refusal is reported with. @defaultValue a {@link TargetRefused} */
  refuse?: ((detail: string) => Error) | undefined;
  /** @defaultValue `dns.lookup` */
  resolve?: Resolve | undefined;
}

/** Cloud metadata endpoints outside the link-local range, refused even when private addresses are allowed. */
const METADATA_ADDRESSES = new Set([
  'fd00:ec2::254', // AWS IPv6 instance metadata
  '100.100.100.200', // Alibaba Cloud
  '192.0.0.192', // Oracle Cloud
]);
const METADATA_HOSTS = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data']);
const PRIVATE_RANGES = new Set(['private', 'loopback', 'uniqueLocal', 'carrierGradeNat']);
const RANGE_NAMES: Record<string, string> = {
  unspecified: 'an unspecified address (0.0.0.0 or ::)',
  broadcast: 'the broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address (169.254.0.0/16, fe80::/10), where cloud metadata services live',
  reserved: 'a reserved or documentation address',
  private: 'a private address (10/8, 172.16/12, 192.168/16)',
  loopback: 'a loopback address',
  uniqueLocal: 'a unique-local IPv6 address (fc00::/7)',
  carrierGradeNat: 'a shared (carrier-grade NAT) address (100.64/10)',
};

/** Undefined when `address` may be connected to under `policy`, else the reason it may not. */
export function refusalFor(address: string, policy: SsrfPolicy): string | undefined {
  if (!ipaddr.isValid(address)) return `"${address}" is not an IP address`;
  let ip = ipaddr.parse(address);
  // ::ffff:169.254.169.254 is 169.254.169.254.
  if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress())
    ip = (ip as ipaddr.IPv6).toIPv4Address();
  const normalized = ip.toNormalizedString();
  if (METADATA_ADDRESSES.has(normalized) || METADATA_ADDRESSES.has(ip.toString())) {
    return `${address} is a cloud metadata address`;
  }
  const range = ip.range();
  if (range === 'unicast') return undefined;
  if (PRIVATE_RANGES.has(range)) {
    if (policy.allowPrivate) return undefined;
    return `${address} is ${RANGE_NAMES[range]}${policy.privateHint ? `; ${policy.privateHint}` : ''}`;
  }
  return `${address} is ${RANGE_NAMES[range] ?? `in the special-purpose range "${range}"`}`;
}

/** Whether `hostname` (any case, with or without the final dot) names a cloud metadata service. */
export function isMetadataHost(hostname: string): boolean {
  return METADATA_HOSTS.has(hostname.toLowerCase().replace(/\.$/, ''));
}

/** The URL's host without brackets (IPv6 literals). */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/**
 * The host a URL connects to, as an http URL would read it: for schemes the URL standard does not
 * know (`tcp://`), `0xA9FEA9FE` and `2852039166` stay as written, but a resolver takes them for
 * 169.254.169.254. Undefined when the host is no valid host at all (`1.2.3.999`).
 */
export function canonicalHost(url: URL): string | undefined {
  if (url.protocol === 'http:' || url.protocol === 'https:') return hostOf(url);
  try {
    return hostOf(new URL(`http://${url.host}`));
  } catch {
    return undefined;
  }
}

/**
 * Why a connection to `host` is refused before any lookup (a metadata name, or an IP literal in a
 * refused range); undefined when only its addresses, once resolved, can tell.
 */
export function hostRefusal(host: string, policy: SsrfPolicy): string | undefined {
  if (isMetadataHost(host)) return `${host} is a cloud metadata host`;
  if (net.isIP(host)) return refusalFor(host, policy);
  return undefined;
}

/** Every address `host` resolves to (`host` itself for an IP literal); rejects when it does not resolve. */
export function addressesOf(host: string, resolve: Resolve = dns.lookup): Promise<string[]> {
  if (net.isIP(host)) return Promise.resolve([host]);
  return new Promise((done, fail) => {
    resolve(host, { all: true, verbatim: true }, (error, addresses) => {
      if (error) fail(error);
      else done(addresses.map((a) => a.address));
    });
  });
}

/** Why `host` is refused when it resolves to `addresses` (one refused address is enough), else undefined. */
export function addressesRefusal(host: string, addresses: string[], policy: SsrfPolicy): string | undefined {
  for (const address of addresses) {
    const why = refusalFor(address, policy);
    if (why) return address === host ? why : `${host} resolves to ${why}`;
  }
  return undefined;
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for `http.request` and `net.connect` that refuses blocked addresses, so the address
 * checked is the one connected to and a host whose DNS changed after an earlier check (rebinding)
 * still cannot reach them. IP literals never reach a lookup: check them with {@link hostRefusal}.
 */
export function guardedLookup(policy: SsrfPolicy, options: GuardOptions = {}) {
  const refuse = options.refuse ?? ((detail: string) => new TargetRefused(detail));
  const resolve = options.resolve ?? (dns.lookup as Resolve);
  return (hostname: string, lookupOptions: dns.LookupOptions, callback: LookupCallback): void => {
    resolve(hostname, { ...lookupOptions, all: true, verbatim: true }, (error, addresses) => {
      if (error) return callback(error, []);
      const why = addressesRefusal(
        hostname,
        addresses.map((a) => a.address),
        policy,
      );
      if (why) return callback(refuse(why), []);
      if (lookupOptions.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}
