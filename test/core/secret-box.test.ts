import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSecretBox, secretKeyId, type Sealed } from '#core/crypto/secret-box.ts';

const key = Buffer.alloc(32, 7);
const otherKey = Buffer.alloc(32, 9);

/** Flips one bit of a base64 field. */
function flipBit(base64: string, byte = 0): string {
  const bytes = Buffer.from(base64, 'base64');
  bytes[byte] = (bytes[byte] as number) ^ 1;
  return bytes.toString('base64');
}

describe('secret box', () => {
  it('opens what it sealed, with the same row binding', () => {
    const box = createSecretBox(key);
    for (const value of ['s3cr3t', '', 'ünïcödé 🔑', 'x'.repeat(70_000)]) {
      const sealed = box.seal(value, 'var-1:1');
      expect(box.open(sealed, 'var-1:1')).toBe(value);
    }
  });

  it('returns base64 fields: a 12-byte IV, a 16-byte tag and the key id', () => {
    const box = createSecretBox(key);

    const sealed = box.seal('hello world', 'var-1:1');

    expect(Buffer.from(sealed.iv, 'base64')).toHaveLength(12);
    expect(Buffer.from(sealed.tag, 'base64')).toHaveLength(16);
    expect(Buffer.from(sealed.ciphertext, 'base64')).toHaveLength('hello world'.length);
    expect(sealed.ciphertext).not.toContain('hello');
    expect(sealed.keyId).toBe(box.keyId);
  });

  it('uses a different IV (and so a different ciphertext) for every seal of the same value', () => {
    const box = createSecretBox(key);

    const sealed = Array.from({ length: 50 }, () => box.seal('same value', 'var-1:1'));

    expect(new Set(sealed.map((s) => s.iv)).size).toBe(50);
    expect(new Set(sealed.map((s) => s.ciphertext)).size).toBe(50);
  });

  it('refuses to open a ciphertext bound to another row or revision', () => {
    const box = createSecretBox(key);
    const sealed = box.seal('s3cr3t', 'var-1:2');

    for (const aad of ['var-1:1', 'var-2:2', '']) {
      expect(() => box.open(sealed, aad)).toThrow(/secret failed authentication/);
    }
  });

  it('refuses a changed ciphertext, IV or tag', () => {
    const box = createSecretBox(key);
    const sealed = box.seal('s3cr3t value', 'var-1:1');
    const tampered: Sealed[] = [
      { ...sealed, ciphertext: flipBit(sealed.ciphertext, 3) },
      { ...sealed, iv: flipBit(sealed.iv) },
      { ...sealed, tag: flipBit(sealed.tag, 15) },
      // A truncated tag would be easier to forge; GCM accepts it unless told otherwise.
      { ...sealed, tag: Buffer.from(sealed.tag, 'base64').subarray(0, 4).toString('base64') },
      { ...sealed, ciphertext: sealed.ciphertext + 'AAAA' },
    ];

    for (const t of tampered) {
      expect(() => box.open(t, 'var-1:1')).toThrow(/secret failed authentication/);
    }
  });

  it('refuses a value sealed under another key, naming both key ids', () => {
    const sealer = createSecretBox(otherKey);
    const box = createSecretBox(key);
    const sealed = sealer.seal('s3cr3t', 'var-1:1');

    expect(() => box.open(sealed, 'var-1:1')).toThrow(
      `secret was sealed with key ${sealer.keyId}, but the configured key is ${box.keyId}`,
    );
    // Even when the key id is forged to match, authentication fails.
    expect(() => box.open({ ...sealed, keyId: box.keyId }, 'var-1:1')).toThrow(
      /secret failed authentication/,
    );
  });

  it('names a key by 16 hex digits that depend on the key only', () => {
    const box = createSecretBox(key);

    expect(box.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect(createSecretBox(Buffer.from(key)).keyId).toBe(box.keyId);
    expect(createSecretBox(otherKey).keyId).not.toBe(box.keyId);
    expect(secretKeyId(key)).toBe(box.keyId);
    expect(box.keyId).not.toContain(key.toString('hex').slice(0, 16));
  });

  it('fingerprints equal values equally under one key and differently under another', () => {
    const box = createSecretBox(key);
    const again = createSecretBox(Buffer.from(key));
    const other = createSecretBox(otherKey);

    const fingerprint = box.fingerprint('hunter2');

    expect(fingerprint).toMatch(/^sha256:[0-9a-f]{16}$/);
    expect(again.fingerprint('hunter2')).toBe(fingerprint);
    expect(box.fingerprint('hunter3')).not.toBe(fingerprint);
    expect(other.fingerprint('hunter2')).not.toBe(fingerprint);
  });

  it('fingerprints with a keyed hash, not a plain SHA-256 of the value', () => {
    const box = createSecretBox(key);
    const plain = createHash('sha256').update('1234').digest('hex').slice(0, 16);

    expect(box.fingerprint('1234')).not.toBe(`sha256:${plain}`);
  });

  it('keeps its key when the caller reuses the buffer it passed', () => {
    const buffer = randomBytes(32);
    const box = createSecretBox(buffer);
    const sealed = box.seal('s3cr3t', 'a:1');

    buffer.fill(0);

    expect(box.open(sealed, 'a:1')).toBe('s3cr3t');
  });

  it('refuses a key that is not 32 bytes', () => {
    for (const length of [0, 16, 31, 33, 64]) {
      expect(() => createSecretBox(Buffer.alloc(length, 1))).toThrow(/must be 32 bytes/);
    }
  });
});
