import type { SecretBox } from '#core/crypto/secret-box.ts';

/**
 * The stored form of whoever a session belongs to, a keyed hash, never the key: raw user ids and
 * addresses are personal data. `key` is the gateway's routing key (`token:<id>`, `key:<header>`,
 * `addr:<address>`, core/gateway/routing.ts) or the collector's from a span or data point
 * (`user:<enduser.id>`, else `addr:<client.address>`), so one address seen both ways is one user.
 * One function for both, and the `gateway-client:` domain stored hashes have been made with since
 * the gateway came: changing it would make every user new. '' when nothing identifies the client.
 */
export function clientKeyHash(box: SecretBox, key: string | undefined): string {
  return key === undefined || key === ''
    ? ''
    : box.fingerprint(`gateway-client:${key}`).slice('sha256:'.length);
}

/**
 * {@link clientKeyHash} remembering up to `max` keys across requests: an HMAC per span is a
 * measurable share of ingest CPU, and the same clients send span after span. Forgets everything
 * when full (a cold start costs one HMAC per key again, nothing more).
 */
export function cachedClientKeyHash(box: SecretBox, max = 100_000): (key: string) => string {
  const known = new Map<string, string>();
  return (key) => {
    let hashed = known.get(key);
    if (hashed === undefined) {
      if (known.size >= max) known.clear();
      hashed = clientKeyHash(box, key);
      known.set(key, hashed);
    }
    return hashed;
  };
}
