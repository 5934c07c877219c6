import {
  addressesOf,
  addressesRefusal,
  guardedLookup as netGuardedLookup,
  hostOf,
  isMetadataHost,
  refusalFor as netRefusalFor,
  TargetRefused,
  type SsrfPolicy as NetPolicy,
} from '../net/ssrf.ts';

export { hostOf };

/** Why a webhook URL or address is refused; `code` is stable, `message` says what to do. */
export class WebhookTargetRefused extends TargetRefused {
  constructor(detail: string) {
    super(detail, 'webhook-url-refused');
  }
}

export interface SsrfPolicy {
  /** Private (RFC 1918, fc00::/7, 100.64/10) and loopback addresses allowed: `PYLEE_ALLOW_PRIVATE_WEBHOOKS`. */
  allowPrivate: boolean;
}

/** Webhooks share the guard of `core/net/ssrf.ts`; a refused private address says how to allow them. */
const netPolicy = (policy: SsrfPolicy): NetPolicy => ({
  allowPrivate: policy.allowPrivate,
  privateHint: 'set PYLEE_ALLOW_PRIVATE_WEBHOOKS=true to allow private and loopback targets',
});

/** Undefined when `address` may receive webhooks under `policy`, else the reason it may not. */
export function refusalFor(address: string, policy: SsrfPolicy): string | undefined {
  return netRefusalFor(address, netPolicy(policy));
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
  if (isMetadataHost(url.hostname)) {
    throw new WebhookTargetRefused(`${url.hostname} is a cloud metadata host`);
  }
  return url;
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
  try {
    addresses = await addressesOf(host);
  } catch (error) {
    throw new WebhookTargetRefused(
      `the host ${host} does not resolve (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  const why = addressesRefusal(host, addresses, netPolicy(policy));
  if (why) throw new WebhookTargetRefused(why);
  return url;
}

/**
 * A `lookup` for `http.request` that refuses blocked addresses, so a host whose DNS changed after the
 * check (rebinding) still cannot reach them.
 */
export function guardedLookup(policy: SsrfPolicy) {
  return netGuardedLookup(netPolicy(policy), { refuse: (detail) => new WebhookTargetRefused(detail) });
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
