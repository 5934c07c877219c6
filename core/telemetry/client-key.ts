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
