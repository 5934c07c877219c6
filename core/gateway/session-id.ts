/**
 * The gateway's own `Mcp-Session-Id`: the session's routing state sealed into the id the client
 * holds (as agentgateway does), so any gateway replica can route a session and none keeps a table.
 *
 * Format, version 1: base64url (no padding) of `version byte ‖ IV (12) ‖ GCM tag (16) ‖ ciphertext`,
 * the ciphertext being the claims as compact JSON, sealed with the project's {@link SecretBox}
 * (AES-256-GCM). The additional authenticated data names the purpose and the format version, so a
 * value sealed for anything else under the same key (a stored variable) never opens as a session,
 * and the version byte cannot be changed without the tag failing. base64url's alphabet
 * (`A–Z a–z 0–9 - _`) lies inside the visible ASCII range 0x21–0x7E the MCP specification
 * (2025-11-25, transports, "Session Management") requires of a session id.
 */
import type { SecretBox } from '../crypto/secret-box.ts';

/** The client's original `initialize` params, kept so a migration can initialize another version. */
export interface InitParams {
  protocolVersion: string;
  capabilities: Record<string, unknown>;
  clientInfo: Record<string, unknown>;
}

/** What a gateway session id says. */
export interface SessionClaims {
  org: string;
  server: string;
  environment: string;
  /** The version the session is pinned to. */
  version: string;
  /** The upstream's own `Mcp-Session-Id`, when the upstream assigned one. */
  upstreamSessionId: string | undefined;
  /** When the gateway issued the id, in milliseconds since the epoch. */
  issuedAt: number;
  init?: InitParams;
}

/** Why a session id was refused. The gateway answers every one of them with 404, as the spec says. */
export type SessionRefusal = 'malformed' | 'forged' | 'expired' | 'other-org';

export type OpenedSession = { ok: true; claims: SessionClaims } | { ok: false; reason: SessionRefusal };

export interface OpenSessionOptions {
  /** The current time, in milliseconds since the epoch. */
  now: number;
  /** Ids issued longer ago than this are `expired`. */
  maxAgeMs: number;
  /** When given, an id issued for another org is refused as `other-org`. */
  org?: string;
}

/** The format version this module writes; the first byte of every id. */
export const SESSION_ID_FORMAT = 1;

/**
 * The longest id {@link sealSession} returns. Proxies and servers commonly cap a header line at
 * 8 KiB; half of that leaves room for the rest of the request's headers.
 */
export const MAX_SESSION_ID_LENGTH = 4096;

const IV_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + IV_BYTES + TAG_BYTES;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** Thrown by {@link sealSession} when the claims would make an id longer than {@link MAX_SESSION_ID_LENGTH}. */
export class SessionIdTooLongError extends Error {
  /** The length the id would have had. */
  readonly length: number;

  constructor(length: number) {
    super(
      `the session id would be ${length} characters, over the ${MAX_SESSION_ID_LENGTH} a header can safely carry; keep the initialize params in a store keyed by the session instead`,
    );
    this.name = 'SessionIdTooLongError';
    this.length = length;
  }
}

function aadFor(format: number): string {
  return `pylee gateway session v${format}`;
}

/**
 * Seals `claims` into a session id. Each call uses a fresh IV, so two ids for the same claims differ.
 * Only the three `initialize` fields a re-initialization needs are kept from `claims.init`.
 *
 * @throws {@link SessionIdTooLongError} when the id would be too long for a header (huge client capabilities).
 */
export function sealSession(box: SecretBox, claims: SessionClaims): string {
  // Short keys: the id travels in a header on every request.
  const wire: WireClaims = {
    o: claims.org,
    s: claims.server,
    e: claims.environment,
    v: claims.version,
    t: claims.issuedAt,
  };
  if (claims.upstreamSessionId !== undefined) wire.u = claims.upstreamSessionId;
  if (claims.init) {
    wire.i = {
      protocolVersion: claims.init.protocolVersion,
      capabilities: claims.init.capabilities,
      clientInfo: claims.init.clientInfo,
    };
  }
  const sealed = box.seal(JSON.stringify(wire), aadFor(SESSION_ID_FORMAT));
  const bytes = Buffer.concat([
    Buffer.from([SESSION_ID_FORMAT]),
    Buffer.from(sealed.iv, 'base64'),
    Buffer.from(sealed.tag, 'base64'),
    Buffer.from(sealed.ciphertext, 'base64'),
  ]);
  const id = bytes.toString('base64url');
  if (id.length > MAX_SESSION_ID_LENGTH) throw new SessionIdTooLongError(id.length);
  return id;
}

/**
 * Opens a session id from a client. `malformed`: not an id of a format this gateway reads;
 * `forged`: the right shape but not sealed by this key (altered, truncated inside the ciphertext,
 * another deployment's key); `expired`: older than `maxAgeMs`; `other-org`: sealed by this key for
 * another org than `options.org`. Never throws.
 */
export function openSession(box: SecretBox, id: string, options: OpenSessionOptions): OpenedSession {
  if (typeof id !== 'string' || id.length > MAX_SESSION_ID_LENGTH || !BASE64URL.test(id)) {
    return refused('malformed');
  }
  const bytes = Buffer.from(id, 'base64url');
  // Node's decoder ignores the spare bits of the last character; without this check two strings
  // would open to the same session, and a changed character could go unnoticed.
  if (bytes.toString('base64url') !== id) return refused('malformed');
  if (bytes.length <= HEADER_BYTES || bytes[0] !== SESSION_ID_FORMAT) return refused('malformed');

  let plaintext: string;
  try {
    plaintext = box.open(
      {
        iv: bytes.subarray(1, 1 + IV_BYTES).toString('base64'),
        tag: bytes.subarray(1 + IV_BYTES, HEADER_BYTES).toString('base64'),
        ciphertext: bytes.subarray(HEADER_BYTES).toString('base64'),
        // The id does not carry the key id (it would cost 11 characters on every request): another
        // key fails authentication instead, which is the answer a forgery deserves anyway.
        keyId: box.keyId,
      },
      aadFor(SESSION_ID_FORMAT),
    );
  } catch {
    return refused('forged');
  }

  const claims = claimsOf(plaintext);
  // Authentic but unreadable: only a bug in a gateway of the same format version can make one.
  if (!claims) return refused('malformed');
  if (options.now - claims.issuedAt > options.maxAgeMs) return refused('expired');
  if (options.org !== undefined && claims.org !== options.org) return refused('other-org');
  return { ok: true, claims };
}

interface WireClaims {
  o: string;
  s: string;
  e: string;
  v: string;
  t: number;
  u?: string;
  i?: InitParams;
}

function refused(reason: SessionRefusal): OpenedSession {
  return { ok: false, reason };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function claimsOf(plaintext: string): SessionClaims | undefined {
  let wire: unknown;
  try {
    wire = JSON.parse(plaintext);
  } catch {
    return undefined;
  }
  if (!isObject(wire)) return undefined;
  const { o, s, e, v, t, u, i } = wire;
  if (typeof o !== 'string' || typeof s !== 'string' || typeof e !== 'string' || typeof v !== 'string')
    return undefined;
  if (typeof t !== 'number' || !Number.isFinite(t)) return undefined;
  if (u !== undefined && typeof u !== 'string') return undefined;
  const claims: SessionClaims = {
    org: o,
    server: s,
    environment: e,
    version: v,
    upstreamSessionId: u,
    issuedAt: t,
  };
  if (i !== undefined) {
    if (
      !isObject(i) ||
      typeof i.protocolVersion !== 'string' ||
      !isObject(i.capabilities) ||
      !isObject(i.clientInfo)
    )
      return undefined;
    claims.init = {
      protocolVersion: i.protocolVersion,
      capabilities: i.capabilities,
      clientInfo: i.clientInfo,
    };
  }
  return claims;
}
