import dns from 'node:dns';
import net from 'node:net';
import ipaddr from 'ipaddr.js';
import { BadRequestError } from '../errors.ts';

/** Why a webhook URL or address is refused; `code` is stable, `message` says what to do. */
export class WebhookTargetRefused extends BadRequestError {
  constructor(detail: string) {
    super(detail, 'webhook-url-refused');
  }
}

export interface SsrfPolicy {
  /** Private (RFC 1918, fc00::/7, 100.64/10) and loopback addresses allowed: `PYLEE_ALLOW_PRIVATE_WEBHOOKS`. */
  allowPrivate: boolean;
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

/** Undefined when `address` may receive webhooks under `policy`, else the reason it may not. */
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
    return `${address} is ${RANGE_NAMES[range]}; set PYLEE_ALLOW_PRIVATE_WEBHOOKS=true to allow private and loopback targets`;
  }
  return `${address} is ${RANGE_NAMES[range] ?? `in the special-purpose range "${range}"`}`;
}

/** Parses and checks the scheme and host name; the addresses are checked by {@link assertTargetAllowed}. */
export function parseWebhookUrl(raw: string): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new WebhookTargetRefused(`"${redactUrl(raw)}" is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new WebhookTargetRefused(
      `webhook URLs must use http or https, not ${url.protocol.replace(/:$/, '')}`,
    );
  }
  if (url.username || url.password) {
    throw new WebhookTargetRefused('webhook URLs must not carry a user name or password');
  }
  if (METADATA_HOSTS.has(url.hostname.toLowerCase().replace(/\.$/, ''))) {
    throw new WebhookTargetRefused(`${url.hostname} is a cloud metadata host`);
  }
  return url;
}

/** The URL's host without brackets (IPv6 literals). */
export function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/**
 * Resolves the URL's host and refuses it when any address it resolves to is refused (a host with one
 * public and one metadata address is refused). Run at channel creation and again by every delivery,
 * whose connection uses {@link guardedLookup} so the address checked is the one connected to.
 */
export async function assertTargetAllowed(raw: string, policy: SsrfPolicy): Promise<URL> {
  const url = parseWebhookUrl(raw);
  const host = hostOf(url);
  let addresses: string[];
  if (net.isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await dns.promises.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
    } catch (error) {
      throw new WebhookTargetRefused(
        `the host ${host} does not resolve (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
  }
  for (const address of addresses) {
    const why = refusalFor(address, policy);
    if (why) throw new WebhookTargetRefused(`${host} resolves to ${why}`);
  }
  return url;
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | dns.LookupAddress[],
  family?: number,
) => void;

/**
 * A `lookup` for `http.request` that refuses blocked addresses, so a host whose DNS changed after the
 * check (rebinding) still cannot reach them.
 */
export function guardedLookup(policy: SsrfPolicy) {
  return (hostname: string, options: dns.LookupOptions, callback: LookupCallback): void => {
    dns.lookup(hostname, { ...options, all: true, verbatim: true }, (error, addresses) => {
      if (error) return callback(error, []);
      for (const { address } of addresses) {
        const why = refusalFor(address, policy);
        if (why) return callback(new WebhookTargetRefused(`${hostname} resolves to ${why}`), []);
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      callback(null, first.address, first.family);
    });
  };
}

/** Scheme and host only: enough to tell channels apart without revealing a Slack token or a query secret. */
export function redactUrl(raw: string): string {
  try {
    const url = new URL(raw);
    return `${url.protocol}//${url.host}/…`;
  } catch {
    return '(unparseable URL)';
  }
}
