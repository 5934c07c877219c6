/**
 * The advisory database: OSV exports imported all or nothing in one transaction. Withdrawn records
 * are dropped (and remove an earlier import of the same id), of two records with one id the later
 * `modified` wins, aliases are kept, and only the affected entries of ecosystems Pylee's packages
 * use (npm, PyPI, NuGet) are stored.
 */
import { appendAudit } from '../audit/log.ts';
import { assertPermission, type Context } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ForbiddenError } from '../errors.ts';
import { DEFAULT_ORG } from '../orgs.ts';
import { newId } from '../ids.ts';
import { readArchive } from './archive.ts';
import { ecosystemOf, ECOSYSTEMS, normaliseName, OSV_ECOSYSTEMS, type Ecosystem } from './ecosystems.ts';
import { checkRecord, type OsvAffected, type OsvRecord } from './osv.ts';
import { scanIn, versionsTouchedBy, type ScanResult } from './scan.ts';
import { severityOf } from './severity.ts';

export interface ImportStats {
  /** JSON records read. */
  records: number;
  /** Stored or replaced by a later `modified`. */
  imported: number;
  /** Already stored with the same or a later `modified`. */
  unchanged: number;
  /** Withdrawn: not stored, and removed if stored before. */
  withdrawn: number;
  /** No affected package in a supported ecosystem. */
  skipped: number;
  /** Stored advisories per ecosystem after the import. */
  perEcosystem: Record<Ecosystem, number>;
  /** Advisory ids whose stored content changed: what to re-scan versions against. */
  changed: string[];
  /** Versions re-scanned because an advisory they match (or matched) changed. */
  rescanned: number;
  /** Re-scanned versions with an advisory they were not affected by before. */
  newlyAffected: ScanResult[];
  durationMs: number;
}

interface Prepared {
  record: OsvRecord;
  packages: Map<string, { ecosystem: Ecosystem; name: string; affected: OsvAffected[] }>;
}

/** The record's affected entries grouped by supported package; none: the record is not loaded. */
function prepare(record: OsvRecord): Prepared {
  const packages: Prepared['packages'] = new Map();
  for (const affected of record.affected ?? []) {
    const ecosystem = affected.package ? ecosystemOf(affected.package.ecosystem) : undefined;
    if (!ecosystem || !affected.package) continue;
    const name = normaliseName(ecosystem, affected.package.name);
    const key = `${ecosystem}\u0000${name}`;
    const group = packages.get(key) ?? { ecosystem, name, affected: [] };
    group.affected.push(affected);
    packages.set(key, group);
  }
  return { record, packages };
}

const later = (a: string, b: string) => Date.parse(a) > Date.parse(b);

/** What an import reads: an OSV zip export, or records sent as JSON. */
export type AdvisoryInput = { zip: Uint8Array } | { records: unknown[] };

function entriesOf(input: AdvisoryInput): { name: string; json: () => unknown }[] {
  if ('records' in input) return input.records.map((r, i) => ({ name: `records[${i}]`, json: () => r }));
  return readArchive(input.zip).map((entry) => ({
    name: entry.name,
    json: () => {
      try {
        return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(entry.data));
      } catch (error) {
        throw new BadRequestError(
          `${entry.name}: not valid JSON (${(error as Error).message})`,
          'invalid-osv-record',
          {
            record: entry.name,
          },
        );
      }
    },
  }));
}

/** Parses and checks every entry first: one bad record refuses the whole upload. */
function parseEntries(input: AdvisoryInput, only?: Ecosystem): Map<string, OsvRecord> & { read: number } {
  const latest = new Map<string, OsvRecord>() as Map<string, OsvRecord> & { read: number };
  latest.read = 0;
  for (const entry of entriesOf(input)) {
    const record = checkRecord(entry.json(), entry.name);
    latest.read++;
    if (only && !(record.affected ?? []).some((a) => a.package?.ecosystem === ECOSYSTEMS[only])) continue;
    const seen = latest.get(record.id);
    if (!seen || later(record.modified, seen.modified)) latest.set(record.id, record);
  }
  return latest;
}

/** Checks an `ecosystem` filter: one of the supported OSV names (npm, PyPI, NuGet). */
export function parseEcosystem(value: string | undefined): Ecosystem | undefined {
  if (value === undefined) return undefined;
  const ecosystem =
    ecosystemOf(value) ?? (Object.hasOwn(ECOSYSTEMS, value) ? (value as Ecosystem) : undefined);
  if (!ecosystem) {
    throw new BadRequestError(
      `ecosystem "${value}" is not one Pylee scans; use one of ${OSV_ECOSYSTEMS.join(', ')}`,
      'unsupported-ecosystem',
    );
  }
  return ecosystem;
}

const BATCH = 1_000;

/** Stores prepared records (replacing any stored with the same id) in batches of one statement each. */
async function store(tx: Queryable, all: Prepared[]): Promise<void> {
  for (let at = 0; at < all.length; at += BATCH) {
    const batch = all.slice(at, at + BATCH);
    const cols: unknown[][] = [[], [], [], [], [], [], [], [], []];
    const pkgs: unknown[][] = [[], [], [], []];
    for (const p of batch) {
      const { record } = p;
      const severity = severityOf(record);
      const kept = { ...record, affected: [...p.packages.values()].flatMap((g) => g.affected) };
      const values = [
        record.id,
        record.modified,
        record.published ?? null,
        // text[][] must be rectangular: aliases travel as JSON and are unpacked in SQL
        JSON.stringify(record.aliases ?? []),
        record.summary ?? record.details?.split('\n')[0]?.slice(0, 300) ?? '',
        severity.level,
        severity.score,
        severity.vector,
        JSON.stringify(kept),
      ];
      values.forEach((v, i) => cols[i]?.push(v));
      for (const group of p.packages.values()) {
        [record.id, group.ecosystem, group.name, JSON.stringify(group.affected)].forEach((v, i) =>
          pkgs[i]?.push(v),
        );
      }
    }
    await tx.query('DELETE FROM advisories WHERE id = ANY($1)', [cols[0]]);
    await tx.query(
      `INSERT INTO advisories (id, modified, published, aliases, summary, severity, score, vector, record)
       SELECT id, modified, published, ARRAY(SELECT jsonb_array_elements_text(aliases)), summary, severity, score,
         vector, record
       FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::jsonb[], $5::text[], $6::text[],
         $7::float8[], $8::text[], $9::jsonb[]) AS t (id, modified, published, aliases, summary, severity, score,
         vector, record)`,
      cols,
    );
    await tx.query(
      `INSERT INTO advisory_packages (advisory_id, ecosystem, name, affected)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[])`,
      pkgs,
    );
  }
}

export async function perEcosystem(db: Queryable): Promise<Record<Ecosystem, number>> {
  const rows = await db.query<{ ecosystem: Ecosystem; n: number }>(
    'SELECT ecosystem, count(DISTINCT advisory_id) AS n FROM advisory_packages GROUP BY ecosystem',
  );
  const counts = { npm: 0, pypi: 0, nuget: 0 };
  for (const row of rows) counts[row.ecosystem] = Number(row.n);
  return counts;
}

/**
 * Imports an OSV zip export (admin only: the database is shared by every org). All or nothing: a
 * corrupt zip or a record that is not OSV refuses the upload with a 400 naming the record and
 * path, and nothing changes. Audited in the importer's org.
 */
export async function importAdvisories(
  db: Db,
  ctx: Context,
  input: AdvisoryInput,
  options: { source: string; ecosystem?: string | undefined },
): Promise<ImportStats> {
  assertPermission(ctx.principal, 'admin');
  // One advisory database serves every org: only the operator's org may change it.
  if (ctx.principal.orgSlug !== DEFAULT_ORG) {
    throw new ForbiddenError(
      `advisories are shared by every org on this Pylee: only an admin of @${DEFAULT_ORG} may import them (this token is of @${ctx.principal.orgSlug})`,
      'advisories-operator-only',
    );
  }
  const started = performance.now();
  const only = parseEcosystem(options.ecosystem);
  const records = parseEntries(input, only);
  return db.transaction(async (tx) => {
    const stats = { records: records.read, imported: 0, unchanged: 0, withdrawn: 0, skipped: 0 };
    const changed: string[] = [];
    const toStore: Prepared[] = [];
    const ids = [...records.keys()];
    const existing = new Map(
      (
        await tx.query<{ id: string; modified: Date }>(
          'SELECT id, modified FROM advisories WHERE id = ANY($1)',
          [ids],
        )
      ).map((r) => [r.id, r.modified.toISOString()]),
    );
    for (const record of records.values()) {
      const stored = existing.get(record.id);
      if (stored && !later(record.modified, stored)) {
        stats.unchanged++;
        continue;
      }
      if (record.withdrawn) {
        stats.withdrawn++;
        if (stored) {
          await tx.query('DELETE FROM advisories WHERE id = $1', [record.id]);
          changed.push(record.id);
        }
        continue;
      }
      const prepared = prepare(record);
      if (prepared.packages.size === 0) {
        stats.skipped++;
        continue;
      }
      toStore.push(prepared);
      stats.imported++;
      changed.push(record.id);
    }
    await store(tx, toStore);
    const results = await scanIn(tx, await versionsTouchedBy(tx, changed));
    const newlyAffected = results.filter((r) => r.added.length > 0);
    const durationMs = performance.now() - started;
    const counts = await perEcosystem(tx);
    await tx.query(
      'INSERT INTO advisory_imports (id, org_id, source, imported_by, duration_ms, stats) VALUES ($1, $2, $3, $4, $5, $6)',
      [
        newId(),
        ctx.principal.orgId,
        options.source,
        ctx.principal.tokenName,
        durationMs,
        JSON.stringify({ ...stats, perEcosystem: counts }),
      ],
    );
    await appendAudit(tx, ctx, {
      action: 'advisories.import',
      target: { type: 'advisories', name: options.source },
      after: { ...stats, perEcosystem: counts },
    });
    return { ...stats, perEcosystem: counts, changed, rescanned: results.length, newlyAffected, durationMs };
  });
}

export type ImportSummary = Pick<
  ImportStats,
  'records' | 'imported' | 'unchanged' | 'withdrawn' | 'skipped' | 'perEcosystem'
>;

export interface AdvisoryStatus {
  advisories: number;
  perEcosystem: Record<Ecosystem, number>;
  lastImport: {
    at: string;
    source: string;
    importedBy: string;
    durationMs: number;
    stats: ImportSummary;
  } | null;
}

/** Counts per ecosystem and the last import; readable by every token with read. */
export async function advisoryStatus(db: Queryable, ctx: Context): Promise<AdvisoryStatus> {
  assertPermission(ctx.principal, 'read');
  const [total] = await db.query<{ n: number }>('SELECT count(*) AS n FROM advisories');
  const [last] = await db.query<{
    at: Date;
    source: string;
    imported_by: string;
    duration_ms: number;
    stats: AdvisoryStatus['lastImport'] extends infer L ? (L extends { stats: infer S } ? S : never) : never;
  }>('SELECT at, source, imported_by, duration_ms, stats FROM advisory_imports ORDER BY at DESC LIMIT 1');
  return {
    advisories: Number(total?.n ?? 0),
    perEcosystem: await perEcosystem(db),
    lastImport: last
      ? {
          at: last.at.toISOString(),
          source: last.source,
          importedBy: last.imported_by,
          durationMs: last.duration_ms,
          stats: last.stats,
        }
      : null,
  };
}
