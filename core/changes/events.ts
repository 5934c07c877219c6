/**
 * Configuration events: the variable and secret changes (set, change, rotate, delete) the audit
 * trail recorded at every scope that applies to a server in an environment, with who and when.
 * For "began 1 min after secret DB_PASSWORD was rotated in production by alice".
 *
 * The audit summaries of core/registry/variables.ts name the place (`server` slug, `version`,
 * `environment`) and, for a plain variable only, the value; a secret is recorded by revision and
 * fingerprint, so nothing here can show a secret's value.
 */
import type { Queryable } from '../db/client.ts';
import { BadRequestError } from '../errors.ts';
import { SCOPE_NAMES, type ScopeName } from '../registry/variables.ts';
import type { ChangeRow } from './diff.ts';
import { scopeLabel } from './resolved.ts';

export const CONFIGURATION_ACTIONS = [
  'variable.set',
  'variable.delete',
  'secret.set',
  'secret.delete',
] as const;

export interface ConfigurationEvent {
  /** The audit event's id. */
  id: string;
  at: string;
  /** The token (person or pipeline) that made the change. */
  actor: string;
  /** `set`: created; `changed`: a plain variable's new value; `rotated`: a secret's new revision. */
  action: 'set' | 'changed' | 'rotated' | 'deleted';
  secret: boolean;
  name: string;
  scope: ScopeName;
  /** `org`, `org+production`, `server`, `server+production`, `version 1.4.0`. */
  scopeLabel: string;
  environment: string | null;
  version: string | null;
  /** A plain variable's value before and after; for a secret `set`/`unset`, then `rotated`/`set`/`unset`. */
  before: string | null;
  after: string | null;
  /** The secret's revision after the change (null for a deletion or a plain variable). */
  revision: number | null;
  /** `secret DB_PASSWORD was rotated in production`: a clause for a sentence, without the actor. */
  text: string;
}

export interface ConfigurationScope {
  /** The server's slug. */
  server: string;
  /** Only events that apply in this environment; none: every environment. */
  environment?: string | undefined;
  /** Version-scoped events only of these versions; none: of every version of the server. */
  versions?: readonly string[] | undefined;
  from: Date;
  to: Date;
  /** The newest this many; 200 by default. */
  limit?: number | undefined;
}

interface Place {
  name?: string;
  scope?: string;
  server?: string;
  version?: string;
  environment?: string;
  revision?: number;
  value?: string | null;
}

interface EventRow {
  id: string;
  at: Date;
  actor_name: string;
  action: string;
  target_name: string | null;
  before: Place | null;
  after: Place | null;
}

function where(scope: ScopeName, place: Place): string {
  switch (scope) {
    case 'org':
      return 'org-wide';
    case 'environment':
      return `in ${place.environment} (org-wide)`;
    case 'server':
      return `for ${place.server} in every environment`;
    case 'server-environment':
      return `in ${place.environment}`;
    case 'version':
      return `for ${place.server}@${place.version}`;
  }
}

function toEvent(row: EventRow): ConfigurationEvent {
  const place = (row.after ?? row.before ?? {}) as Place;
  const secret = row.action.startsWith('secret.');
  const deleted = row.action.endsWith('.delete');
  const scope = (SCOPE_NAMES as readonly string[]).includes(place.scope ?? '')
    ? (place.scope as ScopeName)
    : 'org';
  const action: ConfigurationEvent['action'] = deleted
    ? 'deleted'
    : row.before === null
      ? 'set'
      : secret
        ? 'rotated'
        : 'changed';
  const name = place.name ?? row.target_name ?? '';
  const plain = (p: Place | null) => (p ? String(p.value ?? '') : null);
  return {
    id: row.id,
    at: row.at.toISOString(),
    actor: row.actor_name,
    action,
    secret,
    name,
    scope,
    scopeLabel: scopeLabel(scope, place.environment ?? null, place.version ?? null),
    environment: place.environment ?? null,
    version: place.version ?? null,
    before: secret ? (row.before ? 'set' : 'unset') : plain(row.before),
    after: secret ? (deleted ? 'unset' : row.before ? 'rotated' : 'set') : deleted ? null : plain(row.after),
    revision: secret && !deleted ? (row.after?.revision ?? null) : null,
    text: `${secret ? 'secret' : 'variable'} ${name} was ${action} ${where(scope, place)}`,
  };
}

/**
 * The audited variable and secret changes in [from, to) that apply to `server` (and, when given,
 * `environment`): org-wide ones, the environment's, the server's, the server's in that environment
 * and those of the server's versions. Oldest first; at most `limit` (the newest ones).
 */
export async function configurationEvents(
  db: Queryable,
  orgId: string,
  scope: ConfigurationScope,
): Promise<ConfigurationEvent[]> {
  const from = scope.from.getTime();
  const to = scope.to.getTime();
  if (Number.isNaN(from) || Number.isNaN(to) || from >= to) {
    throw new BadRequestError('the configuration events window needs from before to', 'invalid-window');
  }
  const limit = Math.min(Math.max(Math.trunc(scope.limit ?? 200), 1), 1000);
  const rows = await db.query<EventRow>(
    `SELECT id, at, actor_name, action, target_name, before, after FROM (
       SELECT *, coalesce(after, before) AS place FROM audit_events
       WHERE org_id = $1 AND action = ANY($2::text[]) AND at >= $3 AND at < $4
     ) e
     WHERE (place->>'server' IS NULL OR place->>'server' = $5)
       AND ($6::text IS NULL OR place->>'environment' IS NULL OR place->>'environment' = $6)
       AND ($7::text[] IS NULL OR place->>'version' IS NULL OR place->>'version' = ANY($7::text[]))
     ORDER BY seq DESC LIMIT $8`,
    [
      orgId,
      [...CONFIGURATION_ACTIONS],
      new Date(from).toISOString(),
      new Date(to).toISOString(),
      scope.server,
      scope.environment ?? null,
      scope.versions ? [...scope.versions] : null,
      limit,
    ],
  );
  return rows.reverse().map(toEvent);
}

/** An event as a change row (kind `configuration-event`). */
export function eventRow(event: ConfigurationEvent): ChangeRow {
  return {
    kind: 'configuration-event',
    name: event.name,
    before: event.before,
    after: event.after,
    scope: event.scopeLabel,
    actor: event.actor,
    at: event.at,
    detail: `${event.secret ? 'secret' : 'variable'} ${event.action}${event.revision !== null ? ` (revision ${event.revision})` : ''}`,
  };
}
