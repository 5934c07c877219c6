/**
 * What changed between two versions of a server in an environment: their configuration
 * (diff.ts), the variables and secrets each runs with there (resolved.ts), the MCP contract
 * (core/canary/contract-diff.ts, from the tools/list health checks saw) and the audited
 * configuration events in a window (events.ts).
 */
import type { Principal } from '../auth/principal.ts';
import { diffTools, type ContractDiff, type McpTool } from '../canary/contract-diff.ts';
import type { Queryable } from '../db/client.ts';
import { BadRequestError } from '../errors.ts';
import { latestToolSnapshot } from '../health/tools.ts';
import { ENVIRONMENT_PATTERN } from '../registry/variables.ts';
import { findServer } from '../registry/servers.ts';
import { findVersion, type VersionRow } from '../registry/versions.ts';
import { contractRows, diffVersions, type ChangeRow, type VersionSide } from './diff.ts';
import { configurationEvents, eventRow } from './events.ts';
import { diffResolved, resolvedEntries } from './resolved.ts';
import { summarizeChanges } from './summary.ts';

/** Configuration events are looked for over the 7 days before `to` unless `from` says otherwise. */
export const DEFAULT_EVENTS_WINDOW_MS = 7 * 24 * 3_600_000;

export interface ChangesQuery {
  server: string;
  baseline: string;
  candidate: string;
  environment?: string | undefined;
  /** Window of the configuration events; default: the 7 days ending at `to` (default now). */
  from?: Date | undefined;
  to?: Date | undefined;
}

export interface VersionChanges {
  server: string;
  baseline: string;
  candidate: string;
  environment: string | null;
  /** The window the configuration events come from. */
  window: { from: string; to: string };
  /** Whether both versions had a tools/list from a health check to diff; false: no contract rows. */
  contractCompared: boolean;
  /** Configuration rows, then resolved variables and secrets, contract, and configuration events (oldest first). */
  changes: ChangeRow[];
  /** `summarizeChanges(changes)` at the time of the answer. */
  summary: string;
}

const ENVIRONMENT_RE = new RegExp(ENVIRONMENT_PATTERN);

const side = (row: VersionRow): VersionSide => ({
  version: row.version,
  config: { ...row.config, remotes: row.config.remotes ?? [], packages: row.config.packages ?? [] },
  breaking: row.breaking,
  migrationGuide: row.migration_guide,
  createdBy: row.created_by,
  createdAt: row.created_at.toISOString(),
});

/** The contract diff from the newest tools/list of each version (in the environment, else anywhere), as canary analysis does. */
async function contractOf(
  db: Queryable,
  orgId: string,
  q: Pick<ChangesQuery, 'server' | 'baseline' | 'candidate' | 'environment'>,
): Promise<ContractDiff | null> {
  const snapshot = async (version: string) =>
    (q.environment
      ? await latestToolSnapshot(db, { orgId, server: q.server, version, environment: q.environment })
      : undefined) ?? (await latestToolSnapshot(db, { orgId, server: q.server, version }));
  const [a, b] = await Promise.all([snapshot(q.baseline), snapshot(q.candidate)]);
  if (!a || !b) return null;
  const tools = (s: typeof a) => s.tools as unknown as McpTool[];
  try {
    return diffTools(tools(a), tools(b), { baseline: q.baseline, candidate: q.candidate });
  } catch {
    try {
      return diffTools(tools(a), tools(b));
    } catch {
      return null;
    }
  }
}

/**
 * Every change between `baseline` and `candidate` of `server` (see {@link VersionChanges}).
 * A server or version the principal cannot see (another org's, or outside a limited token) is a
 * 404, as everywhere else. Secrets are compared by fingerprint only: no value is read or returned.
 */
export async function versionChanges(
  db: Queryable,
  principal: Principal,
  q: ChangesQuery,
  now = Date.now(),
): Promise<VersionChanges> {
  if (q.environment !== undefined && !ENVIRONMENT_RE.test(q.environment)) {
    throw new BadRequestError(
      `environment ${JSON.stringify(q.environment)} is not an environment name (e.g. production)`,
      'invalid-environment',
    );
  }
  const to = q.to ?? new Date(now);
  const from = q.from ?? new Date(to.getTime() - DEFAULT_EVENTS_WINDOW_MS);
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || from >= to) {
    throw new BadRequestError('from must be before to', 'invalid-window');
  }
  const server = await findServer(db, principal, q.server);
  const [base, cand] = await Promise.all([
    findVersion(db, server, q.baseline),
    findVersion(db, server, q.candidate),
  ]);
  const resolve = (row: VersionRow) =>
    resolvedEntries(db, principal.orgId, {
      serverId: server.id,
      versionId: row.id,
      environment: q.environment,
      config: side(row).config,
    });
  const [resolvedA, resolvedB, contract, events] = await Promise.all([
    resolve(base),
    resolve(cand),
    contractOf(db, principal.orgId, q),
    configurationEvents(db, principal.orgId, {
      server: server.slug,
      environment: q.environment,
      versions: [base.version, cand.version],
      from,
      to,
    }),
  ]);
  const candidate = side(cand);
  const changes = [
    ...diffVersions(side(base), candidate),
    ...diffResolved(resolvedA, resolvedB, { baseline: base.version, candidate: cand.version }),
    ...(contract ? contractRows(contract, { scope: `version ${cand.version}`, actor: null, at: null }) : []),
    ...events.map(eventRow),
  ];
  return {
    server: server.slug,
    baseline: base.version,
    candidate: cand.version,
    environment: q.environment ?? null,
    window: { from: from.toISOString(), to: to.toISOString() },
    contractCompared: contract !== null,
    changes,
    summary: summarizeChanges(changes, 3, now),
  };
}
