import { createHash, randomBytes } from 'node:crypto';
import { appendAudit } from '../audit/log.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, NotFoundError, UnauthorizedError } from '../errors.ts';
import { newId } from '../ids.ts';
import {
  normalisePermissions,
  PERMISSIONS,
  type Context,
  type Permission,
  type Principal,
} from './principal.ts';

/** API tokens start with this, so a leaked one is recognisable (and secret scanners can match it). */
export const TOKEN_PREFIX = 'pyl_';
const SHOWN_PREFIX_LENGTH = TOKEN_PREFIX.length + 8;

export function generateToken(): string {
  return TOKEN_PREFIX + randomBytes(32).toString('base64url');
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export interface TokenView {
  id: string;
  name: string;
  prefix: string;
  permissions: Permission[];
  servers: string[] | null;
  /** `null`: deploy to and connect through the gateway in every environment; otherwise only these. */
  environments: string[] | null;
  createdAt: string;
  createdBy: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  active: boolean;
}

interface TokenRow {
  id: string;
  org_id: string;
  name: string;
  prefix: string;
  permissions: Permission[];
  servers: string[] | null;
  environments: string[] | null;
  created_by: string | null;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

function toView(row: TokenRow, now = Date.now()): TokenView {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    permissions: row.permissions,
    servers: row.servers,
    environments: row.environments ?? null,
    createdAt: row.created_at.toISOString(),
    createdBy: row.created_by,
    expiresAt: row.expires_at?.toISOString() ?? null,
    revokedAt: row.revoked_at?.toISOString() ?? null,
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
    active: !row.revoked_at && (!row.expires_at || row.expires_at.getTime() > now),
  };
}

/** What goes into the audit trail about a token: never the token or its hash. */
function summary(view: TokenView) {
  return {
    name: view.name,
    prefix: view.prefix,
    permissions: view.permissions,
    servers: view.servers,
    environments: view.environments,
    expiresAt: view.expiresAt,
    revokedAt: view.revokedAt,
  };
}

export interface NewToken {
  name: string;
  permissions: Permission[];
  servers?: string[] | null | undefined;
  /** Limits where the token may deploy and connect MCP clients through the gateway (environment names). */
  environments?: string[] | null | undefined;
  expiresAt?: string | null | undefined;
}

/**
 * Inserts a token (inside the caller's transaction) and returns the plain value, which exists
 * only in this return value: the store keeps its hash.
 */
export async function insertToken(
  tx: Queryable,
  ctx: Context,
  orgId: string,
  input: NewToken,
  plain = generateToken(),
): Promise<{ token: string; view: TokenView }> {
  const unknown = input.permissions.filter((p) => !PERMISSIONS.includes(p));
  if (input.permissions.length === 0 || unknown.length > 0) {
    throw new BadRequestError(
      `a token needs at least one permission of ${PERMISSIONS.join(', ')}${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}`,
      'invalid-permissions',
    );
  }
  let expiresAt: Date | null = null;
  if (input.expiresAt) {
    expiresAt = new Date(input.expiresAt);
    if (Number.isNaN(expiresAt.getTime()) || expiresAt.getTime() <= Date.now()) {
      throw new BadRequestError(
        `expiresAt ${input.expiresAt} must be an RFC 3339 time in the future (e.g. ${new Date(Date.now() + 30 * 86_400_000).toISOString()})`,
        'invalid-expiry',
      );
    }
  }
  const servers = input.servers ? [...new Set(input.servers)].sort() : null;
  const environments = input.environments ? [...new Set(input.environments)].sort() : null;
  const [row] = await tx.query<TokenRow>(
    `INSERT INTO tokens (id, org_id, name, prefix, hash, permissions, servers, created_by, expires_at, environments)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING *`,
    [
      newId(),
      orgId,
      input.name,
      plain.slice(0, SHOWN_PREFIX_LENGTH),
      hashToken(plain),
      normalisePermissions(input.permissions),
      servers,
      ctx.principal.tokenId,
      expiresAt,
      environments,
    ],
  );
  const view = toView(row as TokenRow);
  await appendAudit(
    tx,
    ctx,
    { action: 'token.create', target: { type: 'token', id: view.id, name: view.name }, after: summary(view) },
    orgId,
  );
  return { token: plain, view };
}

export function createToken(db: Db, ctx: Context, input: NewToken) {
  return db.transaction((tx) => insertToken(tx, ctx, ctx.principal.orgId, input));
}

export async function listTokens(db: Queryable, orgId: string, options: { includeRevoked?: boolean } = {}) {
  const rows = await db.query<TokenRow>(
    `SELECT * FROM tokens WHERE org_id = $1 ${options.includeRevoked ? '' : 'AND revoked_at IS NULL'} ORDER BY created_at, id`,
    [orgId],
  );
  return rows.map((r) => toView(r));
}

export async function getToken(db: Queryable, orgId: string, id: string): Promise<TokenView> {
  const [row] = await db.query<TokenRow>('SELECT * FROM tokens WHERE org_id = $1 AND id = $2', [orgId, id]);
  if (!row) throw new NotFoundError(`token ${id} was not found`, 'token-not-found');
  return toView(row);
}

/** Revoking is final and idempotent: revoking a revoked token returns it unchanged, with no new event. */
export function revokeToken(db: Db, ctx: Context, id: string): Promise<TokenView> {
  return db.transaction(async (tx) => {
    const [row] = await tx.query<TokenRow>('SELECT * FROM tokens WHERE org_id = $1 AND id = $2 FOR UPDATE', [
      ctx.principal.orgId,
      id,
    ]);
    if (!row) throw new NotFoundError(`token ${id} was not found`, 'token-not-found');
    if (row.revoked_at) return toView(row);
    const before = toView(row);
    const [updated] = await tx.query<TokenRow>(
      'UPDATE tokens SET revoked_at = now() WHERE id = $1 RETURNING *',
      [id],
    );
    const after = toView(updated as TokenRow);
    await appendAudit(tx, ctx, {
      action: 'token.revoke',
      target: { type: 'token', id, name: row.name },
      before: summary(before),
      after: summary(after),
    });
    return after;
  });
}

const LAST_USED_GRANULARITY_MS = 60_000;

/**
 * Resolves a bearer token to its principal. Every failure is the same 401 to the caller, with a
 * reason that helps its owner and tells an attacker nothing about other tokens.
 */
export async function authenticate(db: Queryable, token: string | undefined): Promise<Principal> {
  if (!token) {
    throw new UnauthorizedError(
      'this request has no API token; send `Authorization: Bearer <token>`',
      'missing-token',
    );
  }
  const [row] = await db.query<TokenRow & { org_slug: string }>(
    `SELECT t.*, o.slug AS org_slug FROM tokens t JOIN orgs o ON o.id = t.org_id WHERE t.hash = $1`,
    [hashToken(token)],
  );
  if (!row) throw new UnauthorizedError('the API token is not valid', 'invalid-token');
  if (row.revoked_at)
    throw new UnauthorizedError(`the API token ${row.prefix}… was revoked`, 'revoked-token');
  if (row.expires_at && row.expires_at.getTime() <= Date.now()) {
    throw new UnauthorizedError(
      `the API token ${row.prefix}… expired at ${row.expires_at.toISOString()}`,
      'expired-token',
    );
  }
  // Written at most once a minute per token, so reads do not each turn into a write.
  if (!row.last_used_at || Date.now() - row.last_used_at.getTime() > LAST_USED_GRANULARITY_MS) {
    await db.query('UPDATE tokens SET last_used_at = now() WHERE id = $1', [row.id]);
  }
  return {
    orgId: row.org_id,
    orgSlug: row.org_slug,
    tokenId: row.id,
    tokenName: row.name,
    permissions: row.permissions,
    servers: row.servers,
    // Absent means every environment, as for tokens created before environments existed.
    ...(row.environments ? { environments: row.environments } : {}),
  };
}
