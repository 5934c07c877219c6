import { randomBytes } from 'node:crypto';
import { appendAudit } from '../audit/log.ts';
import type { Db, Queryable } from '../db/client.ts';
import { NotFoundError, UnauthorizedError } from '../errors.ts';
import { newId } from '../ids.ts';
import { findServer } from '../registry/servers.ts';
import { assertServerAccess, type Context, type Principal } from './principal.ts';
import { hashToken } from './tokens.ts';

/** Ingest keys start with this, distinct from API tokens (`pyl_`), so a leaked one is recognisable. */
export const INGEST_KEY_PREFIX = 'pyli_';

export interface IngestKeyView {
  id: string;
  name: string;
  prefix: string;
  server: string | null;
  createdAt: string;
  createdBy: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
  active: boolean;
}

interface IngestKeyRow {
  id: string;
  org_id: string;
  name: string;
  prefix: string;
  server: string | null;
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

const toView = (row: IngestKeyRow): IngestKeyView => ({
  id: row.id,
  name: row.name,
  prefix: row.prefix,
  server: row.server,
  createdAt: row.created_at.toISOString(),
  createdBy: row.created_by,
  revokedAt: row.revoked_at?.toISOString() ?? null,
  lastUsedAt: row.last_used_at?.toISOString() ?? null,
  active: row.revoked_at === null,
});

/** Creates a key (shown once); bound to `server` when given, which must be registered and visible. */
export function createIngestKey(
  db: Db,
  ctx: Context,
  input: { name: string; server?: string | null | undefined },
) {
  if (ctx.principal.servers !== null && !input.server) {
    throw new NotFoundError(
      'a token limited to some servers can only create ingest keys bound to one of them; pass server',
      'server-not-found',
    );
  }
  return db.transaction(async (tx) => {
    if (input.server) await findServer(tx, ctx.principal, input.server);
    const key = INGEST_KEY_PREFIX + randomBytes(32).toString('base64url');
    const [row] = await tx.query<IngestKeyRow>(
      `INSERT INTO ingest_keys (id, org_id, name, prefix, hash, server, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        input.name,
        key.slice(0, INGEST_KEY_PREFIX.length + 8),
        hashToken(key),
        input.server ?? null,
        ctx.principal.tokenName,
      ],
    );
    const view = toView(row as IngestKeyRow);
    await appendAudit(tx, ctx, {
      action: 'ingest-key.create',
      target: { type: 'ingest-key', id: view.id, name: view.name },
      after: { name: view.name, prefix: view.prefix, server: view.server },
    });
    return { key, view };
  });
}

export async function listIngestKeys(
  db: Queryable,
  principal: Principal,
  options: { includeRevoked?: boolean } = {},
) {
  const rows = await db.query<IngestKeyRow>(
    `SELECT * FROM ingest_keys WHERE org_id = $1 ${options.includeRevoked ? '' : 'AND revoked_at IS NULL'}
       AND ($2::text[] IS NULL OR server = ANY($2)) ORDER BY created_at, id`,
    [principal.orgId, principal.servers],
  );
  return rows.map(toView);
}

/** Revoking is final and idempotent; a limited token only sees keys bound to its servers. */
export function revokeIngestKey(db: Db, ctx: Context, id: string): Promise<IngestKeyView> {
  return db.transaction(async (tx) => {
    const [row] = await tx.query<IngestKeyRow>(
      'SELECT * FROM ingest_keys WHERE org_id = $1 AND id = $2 FOR UPDATE',
      [ctx.principal.orgId, id],
    );
    const visible =
      row &&
      (ctx.principal.servers === null || (row.server !== null && ctx.principal.servers.includes(row.server)));
    if (!row || !visible) throw new NotFoundError(`ingest key ${id} was not found`, 'ingest-key-not-found');
    if (row.server) assertServerAccess(ctx.principal, row.server);
    if (row.revoked_at) return toView(row);
    const [updated] = await tx.query<IngestKeyRow>(
      'UPDATE ingest_keys SET revoked_at = now() WHERE id = $1 RETURNING *',
      [id],
    );
    await appendAudit(tx, ctx, {
      action: 'ingest-key.revoke',
      target: { type: 'ingest-key', id, name: row.name },
      before: { active: true },
      after: { active: false },
    });
    return toView(updated as IngestKeyRow);
  });
}

export interface IngestIdentity {
  orgId: string;
  keyId: string;
  /** The one server this key may send telemetry for, or null. */
  server: string | null;
}

const CACHE_TTL_MS = 30_000;

/**
 * Resolves ingest keys on the collector's hot path. Answers (including "no such key") are cached
 * for 30 s, so a revoked key stops working within that time and a flood of bad keys costs no queries.
 */
export class IngestKeyVerifier {
  readonly #db: Queryable;
  readonly #cache = new Map<string, { identity: IngestIdentity | null; until: number }>();

  constructor(db: Queryable) {
    this.#db = db;
  }

  async verify(key: string | undefined): Promise<IngestIdentity> {
    if (!key) {
      throw new UnauthorizedError(
        'no ingest key; send `Authorization: Bearer <key>` or `x-pylee-ingest-key: <key>` (create one with POST /api/v1/ingest-keys)',
        'missing-ingest-key',
      );
    }
    const hash = hashToken(key);
    const now = Date.now();
    let entry = this.#cache.get(hash);
    if (!entry || entry.until < now) {
      const [row] = await this.#db.query<IngestKeyRow>(
        'SELECT * FROM ingest_keys WHERE hash = $1 AND revoked_at IS NULL',
        [hash],
      );
      entry = {
        identity: row ? { orgId: row.org_id, keyId: row.id, server: row.server } : null,
        until: now + CACHE_TTL_MS,
      };
      if (this.#cache.size > 10_000) this.#cache.clear();
      this.#cache.set(hash, entry);
      if (row && (!row.last_used_at || now - row.last_used_at.getTime() > 60_000)) {
        await this.#db.query('UPDATE ingest_keys SET last_used_at = now() WHERE id = $1', [row.id]);
      }
    }
    if (!entry.identity)
      throw new UnauthorizedError('the ingest key is not valid or was revoked', 'invalid-ingest-key');
    return entry.identity;
  }
}
