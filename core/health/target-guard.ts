import net from 'node:net';
import { addressesOf, addressesRefusal, canonicalHost, type Resolve } from '../net/ssrf.ts';
import { CHECK_TARGET_POLICY, refusedTarget } from './model.ts';

/** How long saving a check waits for its host name to resolve before leaving it to the runs. */
const LOOKUP_TIMEOUT_MS = 2_000;

/**
 * When a check is saved: refuses a URL whose host name resolves to an address health checks may not
 * reach (a name for 169.254.169.254, say). IP literals and metadata names are refused by
 * `checkSpec` already. A host that does not resolve (yet, or not within 2 s) is saved: every run
 * checks the address it connects to again, and fails with "host not found" until the name resolves.
 */
export async function assertTargetAddressesAllowed(
  rawUrl: string,
  options: { resolve?: Resolve | undefined } = {},
): Promise<void> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    return; // not a URL: checkSpec says so
  }
  const host = canonicalHost(url);
  if (host === undefined || net.isIP(host)) return;
  let timer: NodeJS.Timeout | undefined;
  const addresses = await Promise.race([
    addressesOf(host, options.resolve).catch(() => [] as string[]),
    new Promise<string[]>((resolve) => {
      timer = setTimeout(() => resolve([]), LOOKUP_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
  const why = addressesRefusal(host, addresses, CHECK_TARGET_POLICY);
  if (why) throw refusedTarget(rawUrl, why);
}
