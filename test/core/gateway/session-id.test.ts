import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSecretBox } from '#core/crypto/secret-box.ts';
import {
  MAX_SESSION_ID_LENGTH,
  openSession,
  sealSession,
  SESSION_ID_FORMAT,
  SessionIdTooLongError,
  type OpenSessionOptions,
  type SessionClaims,
} from '#core/gateway/session-id.ts';

const box = createSecretBox(Buffer.alloc(32, 7));
const otherBox = createSecretBox(Buffer.alloc(32, 9));
const HOUR = 3_600_000;
const issuedAt = Date.UTC(2026, 11, 1, 12, 0, 0);
const at: OpenSessionOptions = { now: issuedAt + 1000, maxAgeMs: 24 * HOUR };

/** A typical claim set: the SDK client's initialize params and a UUID upstream session id. */
const typical: SessionClaims = {
  org: 'org_01JDXK9F3Q7V2M8N4R6T0W5Y1Z',
  server: 'weather',
  environment: 'production',
  version: '1.4.0-rc.2',
  upstreamSessionId: '1868a90c-4b8e-4f2a-9d1c-7e3b5a6f0c21',
  issuedAt,
  init: {
    protocolVersion: '2025-11-25',
    capabilities: { roots: { listChanged: true }, sampling: {}, elicitation: {} },
    clientInfo: { name: 'claude-desktop', version: '0.14.3' },
  },
};

function opened(id: string, options = at) {
  const result = openSession(box, id, options);
  return result.ok ? result.claims : result.reason;
}

describe('gateway session id', () => {
  it('opens what it sealed, with and without the optional parts', () => {
    const { init: _init, ...bare } = typical;
    for (const claims of [typical, bare, { ...bare, upstreamSessionId: undefined }]) {
      expect(opened(sealSession(box, claims))).toEqual(claims);
    }
  });

  it('keeps only the initialize fields a re-initialization needs', () => {
    const init = { ...typical.init!, extra: 'not kept' } as SessionClaims['init'];
    expect(opened(sealSession(box, { ...typical, init }))).toEqual(typical);
  });

  it('is a different id for every seal of the same claims', () => {
    const ids = new Set(Array.from({ length: 20 }, () => sealSession(box, typical)));
    expect(ids.size).toBe(20);
  });

  it('is made of visible ASCII (0x21–0x7E) only, whatever the claims hold', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string(), fc.nat(), (org, version, t) => {
        const id = sealSession(box, { ...typical, org, version, issuedAt: t });
        expect(id).toMatch(/^[\x21-\x7e]+$/);
        expect(opened(id, { now: t, maxAgeMs: HOUR })).toMatchObject({ org, version });
      }),
      { numRuns: 200 },
    );
  });

  it('stays short enough for a header: a typical claim set', () => {
    const id = sealSession(box, typical);
    const { init: _init, ...bare } = typical;
    const withoutInit = sealSession(box, bare);
    // 29 bytes of version, IV and tag, then the JSON claims: the length depends only on the claims.
    expect(id.length).toBe(464);
    expect(withoutInit.length).toBe(235);
    expect(id.startsWith('A')).toBe(true); // the version byte 0x01 encodes as a leading 'A'
    expect(SESSION_ID_FORMAT).toBe(1);
  });

  it('refuses to seal claims that would not fit in a header', () => {
    const huge = { ...typical.init!, capabilities: { experimental: { blob: 'x'.repeat(5000) } } };
    expect(() => sealSession(box, { ...typical, init: huge })).toThrow(SessionIdTooLongError);
    expect(MAX_SESSION_ID_LENGTH).toBe(4096);
    expect(() => sealSession(box, { ...typical, init: huge })).toThrow(
      /keep the initialize params in a store/,
    );
  });

  it('refuses any single changed character (as forged, or malformed when the format cannot be read)', () => {
    const id = sealSession(box, typical);
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    for (let i = 0; i < id.length; i++) {
      const replacement = alphabet[(alphabet.indexOf(id[i]!) + 1 + (i % 63)) % 64]!;
      const changed = id.slice(0, i) + replacement + id.slice(i + 1);
      const reason = opened(changed);
      // The first two characters carry the version byte; the last one may carry spare bits.
      if (i < 2 || i === id.length - 1) expect(['forged', 'malformed']).toContain(reason);
      else expect(reason).toBe('forged');
    }
  });

  it('refuses any single changed byte after the version byte as forged', () => {
    const bytes = Buffer.from(sealSession(box, typical), 'base64url');
    for (let i = 1; i < bytes.length; i++) {
      const copy = Buffer.from(bytes);
      copy[i] = copy[i]! ^ (1 << (i % 8));
      expect(opened(copy.toString('base64url'))).toBe('forged');
    }
    const otherVersion = Buffer.from(bytes);
    otherVersion[0] = 2;
    expect(opened(otherVersion.toString('base64url'))).toBe('malformed');
  });

  it('refuses a truncated or extended id', () => {
    const id = sealSession(box, typical);
    for (const cut of [1, 2, 3, 10, 39, 40, id.length - 1]) {
      expect(['forged', 'malformed']).toContain(opened(id.slice(0, id.length - cut)));
    }
    // Cut at a byte boundary past the header: a well-formed id whose tag no longer matches.
    expect(opened(id.slice(0, 48))).toBe('forged');
    expect(opened(id.slice(0, 39))).toBe('malformed'); // not even a header
    expect(opened(id + 'AAAA')).toBe('forged');
  });

  it('refuses what is not an id at all', () => {
    for (const id of [
      '',
      'abc',
      '1868a90c-4b8e-4f2a-9d1c-7e3b5a6f0c21',
      'A'.repeat(5000),
      'A+/=',
      'ä',
      ' A',
    ]) {
      expect(opened(id)).toBe('malformed');
    }
  });

  it('refuses an id sealed with another key as forged', () => {
    expect(openSession(otherBox, sealSession(box, typical), at)).toEqual({ ok: false, reason: 'forged' });
  });

  it('refuses a value sealed for another purpose under the same key', () => {
    const sealed = box.seal(JSON.stringify({ o: 'x', s: 's', e: 'e', v: '1', t: issuedAt }), 'var-1:1');
    const bytes = Buffer.concat([
      Buffer.from([1]),
      Buffer.from(sealed.iv, 'base64'),
      Buffer.from(sealed.tag, 'base64'),
      Buffer.from(sealed.ciphertext, 'base64'),
    ]);
    expect(opened(bytes.toString('base64url'))).toBe('forged');
  });

  it('refuses an id older than the maximum age, and accepts one at it', () => {
    const id = sealSession(box, typical);
    expect(opened(id, { now: issuedAt + HOUR, maxAgeMs: HOUR })).toEqual(typical);
    expect(opened(id, { now: issuedAt + HOUR + 1, maxAgeMs: HOUR })).toBe('expired');
  });

  it('refuses an id of another org when the org is expected', () => {
    const id = sealSession(box, typical);
    expect(opened(id, { ...at, org: typical.org })).toEqual(typical);
    expect(openSession(box, id, { ...at, org: 'org_other' })).toEqual({ ok: false, reason: 'other-org' });
  });
});
