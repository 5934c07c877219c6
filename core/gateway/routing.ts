/**
 * Which version serves a client that has no session: weighted rendezvous hashing (highest random
 * weight), so every gateway replica computes the same answer from the weights alone, one client
 * stays on one version, and a weight change moves only the share of clients it has to.
 *
 * Per-request (non-sticky) random choice is what the agentgateway row of STYLE.md warns against:
 * it breaks MCP sessions and spreads one client's calls over versions.
 */
import { createHash } from 'node:crypto';
import type { VersionWeight } from '../deploy/releases.ts';

export type { VersionWeight };

/** What identifies a client for {@link clientKeyOf}; each part may be missing. */
export interface ClientIdentity {
  /** The id of the Pylee token the client presented. */
  tokenId?: string | undefined;
  /** The client key header the client sent (self-chosen, so a client can pick its bucket; it is not a control). */
  clientKeyHeader?: string | undefined;
  /** The client's network address. */
  address?: string | undefined;
}

/**
 * The key a client is hashed by: the token's id, else the client key header, else the address (the
 * order of issue 14), prefixed by its kind so a token id can never collide with an address.
 * `undefined` when none is present.
 */
export function clientKeyOf(identity: ClientIdentity): string | undefined {
  if (identity.tokenId) return `token:${identity.tokenId}`;
  if (identity.clientKeyHeader) return `key:${identity.clientKeyHeader}`;
  if (identity.address) return `addr:${identity.address}`;
  return undefined;
}

/**
 * The version `clientKey` is assigned to under `weights`: each version with a positive, finite
 * weight scores `-weight / ln(u)`, `u` being {@link uniformHash} of the key and the version in
 * (0, 1), and the highest score wins. `-ln(u) / weight` is exponentially distributed with rate
 * `weight`, so a version wins with probability `weight / Σ weights`, independently of the order of
 * `weights` and of the other versions' names. Raising one version's weight raises only its own
 * score, so clients only ever move onto it. `undefined` when no version has weight.
 */
export function chooseVersion(weights: readonly VersionWeight[], clientKey: string): string | undefined {
  let best: string | undefined;
  let bestScore = -Infinity;
  for (const { version, weight } of weights) {
    if (!(weight > 0) || !Number.isFinite(weight)) continue;
    const score = -weight / Math.log(uniformHash(clientKey, version));
    // Equal scores need equal hashes (2^-53): broken by name so the order of `weights` never matters.
    if (score > bestScore || (score === bestScore && best !== undefined && version < best)) {
      best = version;
      bestScore = score;
    }
  }
  return best;
}

/**
 * A stable pseudo-random number in the open interval (0, 1) for a client key and a version: the
 * top 52 bits of SHA-256(`pylee-rendezvous-v1` ‖ JSON `[key, version]`) plus a half step, over
 * 2^52, so neither 0 nor 1 is reached (ln would be -∞ or 0) and every step is exact in a double.
 * SHA-256 rather than a faster hash: it is in node:crypto, identical on every replica and platform,
 * and well mixed for keys that differ in one character. Changing it reassigns every session-less
 * client, so it is versioned by its prefix.
 */
export function uniformHash(clientKey: string, version: string): number {
  // JSON keeps the pair unambiguous: no key and version can join into another pair's bytes.
  const digest = createHash('sha256')
    .update('pylee-rendezvous-v1')
    .update(JSON.stringify([clientKey, version]))
    .digest();
  // 52 bits (20 from the first word, 32 from the second): below 2^52 a double still has half
  // steps, so `+ 0.5` is exact, and the largest result, 1 - 2^-53, is not rounded up to 1.
  const high = digest.readUInt32BE(0) >>> 12;
  const low = digest.readUInt32BE(4);
  return (high * 2 ** 32 + low + 0.5) / 2 ** 52;
}
