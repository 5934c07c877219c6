/**
 * The variables and secrets each version runs with in an environment, and how they differ.
 *
 * The merge is the one `resolveVariables` (core/registry/variables.ts) does — every applicable
 * scope, the most specific winning, in SCOPE_NAMES order — but it reads each secret's fingerprint
 * instead of opening it: a read-permission comparison never decrypts anything, and a secret is
 * compared (and shown) by fingerprint only.
 */
import type { Queryable } from '../db/client.ts';
import type { VersionConfig } from '../registry/server-json.ts';
import { SCOPE_NAMES, type ScopeName } from '../registry/variables.ts';
import { declarations, type ChangeRow } from './diff.ts';

/** What a version gets for one name: where it comes from, and its value (plain) or fingerprint (secret). */
export interface ResolvedEntry {
  name: string;
  secret: boolean;
  /** `default`: no variable is set and the version's declared default applies. */
  scope: ScopeName | 'default';
  environment: string | null;
  value?: string;
  fingerprint?: string;
  revision: number | null;
  updatedAt: string | null;
  updatedBy: string | null;
}

interface Row {
  name: string;
  secret: boolean;
  value: string | null;
  revision: number;
  server_id: string | null;
  version_id: string | null;
  environment: string | null;
  updated_at: Date;
  updated_by: string;
  fingerprint: string | null;
}

const PRECEDENCE = new Map<string, number>(SCOPE_NAMES.map((s, i) => [s, i]));

function scopeOf(row: Pick<Row, 'server_id' | 'version_id' | 'environment'>): ScopeName {
  if (row.server_id === null) return row.environment === null ? 'org' : 'environment';
  if (row.version_id !== null) return 'version';
  return row.environment === null ? 'server' : 'server-environment';
}

/** `org`, `org+production`, `server`, `server+production`, `version 1.4.0`, `default`. */
export function scopeLabel(
  scope: ScopeName | 'default',
  environment: string | null,
  version: string | null,
): string {
  switch (scope) {
    case 'environment':
      return `org+${environment}`;
    case 'server-environment':
      return `server+${environment}`;
    case 'version':
      return `version ${version}`;
    default:
      return scope;
  }
}

/**
 * The resolved variables of one version in `environment` (none: the scopes without one), with
 * the declared defaults of inputs nothing sets. The caller has checked the ids belong to the org.
 */
export async function resolvedEntries(
  db: Queryable,
  orgId: string,
  target: { serverId: string; versionId: string; environment?: string | undefined; config: VersionConfig },
): Promise<Map<string, ResolvedEntry>> {
  const rows = await db.query<Row>(
    `SELECT v.name, v.secret, v.value, v.revision, v.server_id, v.version_id, v.environment, v.updated_at,
            v.updated_by, r.fingerprint
     FROM variables v
     LEFT JOIN secret_revisions r ON v.secret AND r.variable_id = v.id AND r.revision = v.revision
     WHERE v.org_id = $1
       AND ((v.version_id IS NULL AND (v.server_id IS NULL OR v.server_id = $2)
             AND (v.environment IS NULL OR v.environment = $4::text))
         OR (v.server_id = $2 AND v.version_id = $3))`,
    [orgId, target.serverId, target.versionId, target.environment ?? null],
  );
  const winners = new Map<string, Row & { scope: ScopeName }>();
  for (const row of rows) {
    const scope = scopeOf(row);
    const held = winners.get(row.name);
    if (!held || (PRECEDENCE.get(scope) ?? 0) > (PRECEDENCE.get(held.scope) ?? 0))
      winners.set(row.name, { ...row, scope });
  }
  const entries = new Map<string, ResolvedEntry>();
  for (const [name, row] of winners) {
    entries.set(name, {
      name,
      secret: row.secret,
      scope: row.scope,
      environment: row.environment,
      ...(row.secret ? { fingerprint: row.fingerprint ?? '' } : { value: row.value ?? '' }),
      revision: row.revision,
      updatedAt: row.updated_at.toISOString(),
      updatedBy: row.updated_by,
    });
  }
  for (const [name, d] of declarations(target.config)) {
    if (entries.has(name) || d.default === undefined) continue;
    entries.set(name, {
      name,
      secret: d.secret,
      scope: 'default',
      environment: null,
      // A secret input's default is compared by equality and never shown (see diffResolved).
      value: d.default,
      revision: null,
      updatedAt: null,
      updatedBy: null,
    });
  }
  return entries;
}

/** `sha256:0123456789ab`: enough to tell revisions apart in a table. */
const short = (fingerprint: string | undefined) =>
  fingerprint ? fingerprint.replace(/^([a-z0-9]+:)?(.{0,12}).*$/s, '$1$2') : '-';

function sameValue(a: ResolvedEntry, b: ResolvedEntry): boolean {
  if (a.secret !== b.secret) return false;
  if (a.scope === 'default' || b.scope === 'default') {
    if (a.scope !== b.scope) return false;
    return a.value === b.value;
  }
  return a.secret ? a.fingerprint === b.fingerprint : a.value === b.value;
}

/**
 * One row per name whose value differs between what the baseline and the candidate get. Plain
 * variables show both values; secrets show `set`/`unset` before and `changed`/`set`/`unset` after,
 * and a fingerprint prefix in the detail — never a value. Two declared defaults that differ are
 * the declaration's change (diff.ts), not repeated here.
 */
export function diffResolved(
  baseline: Map<string, ResolvedEntry>,
  candidate: Map<string, ResolvedEntry>,
  versions: { baseline: string; candidate: string },
): ChangeRow[] {
  const rows: ChangeRow[] = [];
  const label = (e: ResolvedEntry, version: string) => scopeLabel(e.scope, e.environment, version);
  const names = [...new Set([...baseline.keys(), ...candidate.keys()])].sort();
  for (const name of names) {
    const a = baseline.get(name);
    const b = candidate.get(name);
    if (a && b && sameValue(a, b)) continue;
    if (a?.scope === 'default' && b?.scope === 'default') continue;
    const side = b ?? a;
    if (!side) continue;
    const where = {
      scope: b ? label(b, versions.candidate) : label(a as ResolvedEntry, versions.baseline),
      actor: side.updatedBy,
      at: side.updatedAt,
    };
    const moved =
      a && b && (a.scope !== b.scope || a.environment !== b.environment)
        ? `from ${label(a, versions.baseline)} to ${label(b, versions.candidate)}`
        : undefined;
    if (a?.secret || b?.secret) {
      const fingerprints =
        a?.fingerprint || b?.fingerprint
          ? `fingerprint ${short(a?.fingerprint)} → ${short(b?.fingerprint)}`
          : undefined;
      rows.push({
        ...where,
        kind: 'secret-changed',
        name,
        before: a ? (a.secret ? 'set' : 'set (plain variable)') : 'unset',
        after: b ? (a ? 'changed' : 'set') : 'unset',
      });
      const detail = [b && !b.secret ? 'now a plain variable' : undefined, moved, fingerprints].filter(
        Boolean,
      );
      if (detail.length) (rows.at(-1) as ChangeRow).detail = detail.join('; ');
      continue;
    }
    rows.push({
      ...where,
      kind: 'resolved-variable-changed',
      name,
      before: a ? (a.value ?? '') : null,
      after: b ? (b.value ?? '') : null,
      ...(moved ? { detail: moved } : {}),
    });
  }
  return rows;
}
