/**
 * The maintenance lines a server declares (`server_lines`): which versions a team still patches
 * and until when. Lines past their end of support are flagged wherever their versions show.
 */
import { appendAudit } from '../audit/log.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { inLine, latestInLine, lineOf, parseLine, type LinePattern } from './lines.ts';
import { findServer } from './servers.ts';

interface LineRow {
  id: string;
  server_id: string;
  pattern: string;
  end_of_support: string | Date | null;
  description: string;
  created_by: string;
  created_at: Date;
}

export interface LineView {
  pattern: string;
  /** Last day of support (YYYY-MM-DD), or null: supported until further notice. */
  endOfSupport: string | null;
  /** False once the end of support has passed. */
  supported: boolean;
  description: string;
  /** The line's highest stable version, and its highest version of any status. */
  latest: string | null;
  newest: string | null;
  versions: number;
  createdBy: string;
  createdAt: string;
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;

const day = (value: string | Date | null): string | null =>
  value === null ? null : typeof value === 'string' ? value.slice(0, 10) : value.toISOString().slice(0, 10);

/** Whether a line is still supported on `now`: its end-of-support day included. */
export const supportedOn = (endOfSupport: string | null, now = Date.now()) =>
  endOfSupport === null || now < Date.parse(`${endOfSupport}T00:00:00Z`) + 86_400_000;

/** The declared lines of a server, parsed. */
export async function linesOf(
  db: Queryable,
  serverId: string,
): Promise<(LinePattern & { endOfSupport: string | null })[]> {
  const rows = await db.query<LineRow>('SELECT * FROM server_lines WHERE server_id = $1 ORDER BY pattern', [
    serverId,
  ]);
  return rows.map((r) => ({ ...parseLine(r.pattern), endOfSupport: day(r.end_of_support) }));
}

async function versionsOf(db: Queryable, serverId: string) {
  return db.query<{ version: string; status: string }>(
    'SELECT version, status FROM versions WHERE server_id = $1',
    [serverId],
  );
}

function view(row: LineRow, versions: { version: string; status: string }[], now: number): LineView {
  const line = parseLine(row.pattern);
  const inside = versions.filter((v) => inLine(v.version, line));
  const endOfSupport = day(row.end_of_support);
  return {
    pattern: row.pattern,
    endOfSupport,
    supported: supportedOn(endOfSupport, now),
    description: row.description,
    latest:
      latestInLine(
        inside.filter((v) => v.status === 'stable').map((v) => v.version),
        line,
      ) ?? null,
    newest:
      latestInLine(
        inside.map((v) => v.version),
        line,
        true,
      ) ?? null,
    versions: inside.length,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
  };
}

export async function listLines(db: Queryable, principal: Principal, serverSlug: string, now = Date.now()) {
  const server = await findServer(db, principal, serverSlug);
  const rows = await db.query<LineRow>('SELECT * FROM server_lines WHERE server_id = $1', [server.id]);
  const versions = await versionsOf(db, server.id);
  // Newest line first: 2.x, 1.4.x, 1.3.x, 1.x.
  const order = (l: LinePattern) => [l.major, l.minor ?? Infinity];
  return rows
    .map((r) => view(r, versions, now))
    .sort((a, b) => {
      const [am, an] = order(parseLine(a.pattern)) as [number, number];
      const [bm, bn] = order(parseLine(b.pattern)) as [number, number];
      return bm - am || bn - an;
    });
}

export interface LineInput {
  pattern: string;
  endOfSupport?: string | null;
  description?: string;
}

function checkDate(value: string | null | undefined): string | null {
  if (value === undefined || value === null) return null;
  if (!DATE.test(value) || Number.isNaN(Date.parse(`${value}T00:00:00Z`))) {
    throw new BadRequestError(
      `endOfSupport ${JSON.stringify(value)} is not a date such as 2027-06-30`,
      'invalid-date',
    );
  }
  return value;
}

/** Declares a line, or changes its end of support and description (write permission; audited). */
export async function putLine(db: Db, ctx: Context, serverSlug: string, input: LineInput): Promise<LineView> {
  parseLine(input.pattern);
  const endOfSupport = checkDate(input.endOfSupport);
  return db.transaction(async (tx) => {
    const server = await findServer(tx, ctx.principal, serverSlug, { forUpdate: true });
    const [before] = await tx.query<LineRow>(
      'SELECT * FROM server_lines WHERE server_id = $1 AND pattern = $2',
      [server.id, input.pattern],
    );
    const [row] = await tx.query<LineRow>(
      `INSERT INTO server_lines (id, org_id, server_id, pattern, end_of_support, description, created_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (server_id, pattern) DO UPDATE SET end_of_support = EXCLUDED.end_of_support,
         description = EXCLUDED.description, updated_at = now()
       RETURNING *`,
      [
        newId(),
        ctx.principal.orgId,
        server.id,
        input.pattern,
        endOfSupport,
        input.description ?? before?.description ?? '',
        ctx.principal.tokenName,
      ],
    );
    const result = view(row as LineRow, await versionsOf(tx, server.id), Date.now());
    await appendAudit(tx, ctx, {
      action: before ? 'line.update' : 'line.create',
      target: { type: 'line', id: (row as LineRow).id, name: `${serverSlug}@${input.pattern}` },
      ...(before
        ? { before: { endOfSupport: day(before.end_of_support), description: before.description } }
        : {}),
      after: { endOfSupport: result.endOfSupport, description: result.description },
    });
    return result;
  });
}

export async function deleteLine(db: Db, ctx: Context, serverSlug: string, pattern: string): Promise<void> {
  parseLine(pattern);
  await db.transaction(async (tx) => {
    const server = await findServer(tx, ctx.principal, serverSlug, { forUpdate: true });
    const [row] = await tx.query<LineRow>(
      'DELETE FROM server_lines WHERE server_id = $1 AND pattern = $2 RETURNING *',
      [server.id, pattern],
    );
    if (!row) throw new NotFoundError(`${serverSlug} declares no line ${pattern}`, 'line-not-found');
    await appendAudit(tx, ctx, {
      action: 'line.delete',
      target: { type: 'line', id: row.id, name: `${serverSlug}@${pattern}` },
      before: { endOfSupport: day(row.end_of_support), description: row.description },
    });
  });
}

/** The declared line `pattern` of a server, or 404 naming it. */
export async function declaredLine(db: Queryable, serverId: string, serverSlug: string, pattern: string) {
  const line = parseLine(pattern);
  const [row] = await db.query<LineRow>('SELECT * FROM server_lines WHERE server_id = $1 AND pattern = $2', [
    serverId,
    pattern,
  ]);
  if (!row) {
    throw new NotFoundError(
      `${serverSlug} declares no line ${pattern}; declare it with PUT /servers/${serverSlug}/lines/${pattern}`,
      'line-not-found',
    );
  }
  return { ...line, endOfSupport: day(row.end_of_support) };
}

/** The line a version belongs to, with its support state (for version views). */
export async function versionLine(db: Queryable, serverId: string, version: string, now = Date.now()) {
  const lines = await linesOf(db, serverId);
  const pattern = lineOf(version, lines);
  const declared = lines.find((l) => l.pattern === pattern);
  const endOfSupport = declared?.endOfSupport ?? null;
  return {
    pattern,
    declared: declared !== undefined,
    endOfSupport,
    supported: supportedOn(endOfSupport, now),
  };
}
