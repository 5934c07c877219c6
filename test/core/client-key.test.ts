import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSecretBox } from '#core/crypto/secret-box.ts';
import { cachedClientKeyHash, clientKeyHash } from '#core/telemetry/client-key.ts';

describe('cachedClientKeyHash', () => {
  const box = createSecretBox(randomBytes(32));

  it('answers what clientKeyHash answers, before and after it forgets', () => {
    const cached = cachedClientKeyHash(box, 3);
    const keys = ['addr:10.0.0.1', 'user:alice', 'addr:10.0.0.1', 'user:bob', 'addr:10.0.0.2', 'user:alice'];
    for (const key of [...keys, ...keys]) expect(cached(key)).toBe(clientKeyHash(box, key));
    expect(new Set(keys.map(cached)).size).toBe(4);
  });

  it('keys of another box hash differently', () => {
    const other = cachedClientKeyHash(createSecretBox(randomBytes(32)));
    expect(other('user:alice')).not.toBe(cachedClientKeyHash(box)('user:alice'));
  });
});
