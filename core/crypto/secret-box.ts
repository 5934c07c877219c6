import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createSecretKey,
  hkdfSync,
  randomBytes,
} from 'node:crypto';

/** A value sealed with AES-256-GCM; every field is base64 except `keyId` (hex). */
export interface Sealed {
  ciphertext: string;
  iv: string;
  tag: string;
  /** {@link SecretBox.keyId} of the key that sealed it. */
  keyId: string;
}

/** Seals and opens secret values under one 256-bit key. */
export interface SecretBox {
  /** Names the key without revealing it: the first 16 hex digits of SHA-256(`pylee-key-id` ‖ key). */
  readonly keyId: string;
  /**
   * Encrypts `plaintext` with a fresh random IV. `aad` (additional authenticated data) binds the
   * result to where it is stored, e.g. `${variableId}:${revision}`: opened with any other `aad`, it fails.
   */
  seal(plaintext: string, aad: string): Sealed;
  /** Decrypts what {@link SecretBox.seal} returned; throws when the key, the data or `aad` differ. */
  open(sealed: Sealed, aad: string): string;
  /**
   * `sha256:` and 16 hex digits of an HMAC under a key derived from this box's key: equal values have
   * equal fingerprints under one key, and a short or guessable value cannot be found by hashing guesses.
   */
  fingerprint(plaintext: string): string;
}

export const SECRET_KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const ALGORITHM = 'aes-256-gcm';

/** The key id of a key, as {@link SecretBox.keyId} reports it. */
export function secretKeyId(key: Buffer): string {
  return createHash('sha256').update('pylee-key-id').update(key).digest('hex').slice(0, 16);
}

/** A {@link SecretBox} over `key`, which must be 32 bytes. */
export function createSecretBox(key: Buffer): SecretBox {
  if (!Buffer.isBuffer(key) || key.length !== SECRET_KEY_BYTES) {
    throw new Error(
      `a secret key must be ${SECRET_KEY_BYTES} bytes, got ${Buffer.isBuffer(key) ? key.length : typeof key} (generate one with \`openssl rand -hex 32\`)`,
    );
  }
  // Copied so a caller zeroing or reusing its buffer cannot change the box's key.
  const aesKey = Buffer.from(key);
  const keyId = secretKeyId(aesKey);
  const cipherKey = createSecretKey(aesKey);
  // A separate key for fingerprints, so an HMAC output never relates to the encryption key's use.
  // A KeyObject, built once: the gateway fingerprints on every request.
  const fingerprintKey = createSecretKey(
    Buffer.from(hkdfSync('sha256', aesKey, Buffer.alloc(0), 'pylee secret fingerprint v1', 32)),
  );

  return {
    keyId,

    seal(plaintext, aad) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv(ALGORITHM, cipherKey, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(aad, 'utf8'));
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return {
        ciphertext: ciphertext.toString('base64'),
        iv: iv.toString('base64'),
        tag: cipher.getAuthTag().toString('base64'),
        keyId,
      };
    },

    open(sealed, aad) {
      if (sealed.keyId !== keyId) {
        throw new Error(`secret was sealed with key ${sealed.keyId}, but the configured key is ${keyId}`);
      }
      const iv = Buffer.from(sealed.iv, 'base64');
      const tag = Buffer.from(sealed.tag, 'base64');
      // GCM accepts shorter tags, which are easier to forge: insist on the full 16 bytes.
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
        throw new Error(`secret failed authentication: its IV or tag has the wrong length`);
      }
      try {
        const decipher = createDecipheriv(ALGORITHM, cipherKey, iv, { authTagLength: TAG_BYTES });
        decipher.setAAD(Buffer.from(aad, 'utf8'));
        decipher.setAuthTag(tag);
        return Buffer.concat([
          decipher.update(Buffer.from(sealed.ciphertext, 'base64')),
          decipher.final(),
        ]).toString('utf8');
      } catch (error) {
        throw new Error(
          'secret failed authentication: its ciphertext, IV or tag was changed, or it was copied from another row',
          { cause: error },
        );
      }
    },

    fingerprint(plaintext) {
      const mac = createHmac('sha256', fingerprintKey).update(plaintext, 'utf8').digest('hex');
      return `sha256:${mac.slice(0, 16)}`;
    },
  };
}
