import { appendAudit } from '../audit/log.ts';
import { assertServerAccess, type Context, type Principal } from '../auth/principal.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, ForbiddenError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';

/**
 * The five scopes a variable or secret can be set at, from least to most specific. When a version
 * is resolved for an environment, every applicable scope is merged and the most specific wins:
 *
 * 1. `org` — every server, version and environment of the org.
 * 2. `environment` — org-wide, in one environment (e.g. the `production` log endpoint).
 * 3. `server` — every version of one server, in every environment.
 * 4. `version` — one version of a server, in every environment: what that build needs by default.
 * 5. `server-environment` — one server in one environment, whatever version runs there.
 *
 * `server-environment` outranks `version` on purpose (a product decision): an environment's
 * settings for a server (its production database, its production API key) must hold for whichever
 * version is rolled out there, including a rollback, while a version's own values are defaults that
 * travel with the build. A version cannot be combined with an environment.
 */
export const SCOPE_NAMES = ['org', 'environment', 'server', 'version', 'server-environment'] as const;
export type ScopeName = (typeof SCOPE_NAMES)[number];

/**
 * Where a variable lives: ids for storage, slug and version string for messages. Which of
 * `serverId`, `versionId` and `environment` are set decides the scope (see {@link SCOPE_NAMES}).
 */
export interface ScopeRef {
  serverId?: string | undefined;
  serverSlug?: string | undefined;
  versionId?: string | undefined;
  version?: string | undefined;
  environment?: string | undefined;
}

export const VARIABLE_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_]{0,127}$';
export const ENVIRONMENT_PATTERN = '^[a-z0-9][a-z0-9-]{0,62}$';
/** Largest value, in UTF-8 bytes. */
export const MAX_VALUE_BYTES = 64 * 1024;

export interface VariableView {
  name: string;
  scope: ScopeName;
  environment: string | null;
  secret: boolean;
  /** Plain variables only: a secret's value never appears in a view. */
  value?: string;
  /** Secrets only: tells revisions apart and shows whether two values are equal. */
  fingerprint?: string;
  revision: number;
  updatedAt: string;
  updatedBy: string;
}

export interface SecretRevision {
  revision: number;
  fingerprint: string;
  keyId: string;
  createdAt: string;
  createdBy: string;
}

export interface ResolvedVariable {
  value: string;
  secret: boolean;
  scope: ScopeName;
}

interface VariableRow {
  id: string;
  org_id: string;
  server_id: string | null;
  version_id: string | null;
  environment: string | null;
  name: string;
  secret: boolean;
  value: string | null;
  revision: number;
  created_at: Date;
  updated_at: Date;
  updated_by: string;
  /** The current revision's, joined in for secrets. */
  fingerprint?: string | null;
}

const NAME_RE = new RegExp(VARIABLE_NAME_PATTERN);
const ENVIRONMENT_RE = new RegExp(ENVIRONMENT_PATTERN);
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const PRECEDENCE: Record<ScopeName, number> = Object.fromEntries(SCOPE_NAMES.map((s, i) => [s, i])) as Record<
  ScopeName,
  number
>;

/**
 * The scope `scope` names. Throws `invalid-scope` for a version without its server or a version
 * with an environment, and `invalid-environment` for an environment name that is not allowed.
 */
export function scopeName(scope: ScopeRef): ScopeName {
  const { serverId, versionId, environment } = scope;
  if (versionId !== undefined && serverId === undefined) {
    throw new BadRequestError(
      'a version-scoped variable needs its server: pass the server together with the version',
      'invalid-scope',
    );
  }
  if (versionId !== undefined && environment !== undefined) {
    throw new BadRequestError(
      'a variable cannot be scoped to a version and an environment at once; scope it to the server and environment (it applies to whichever version runs there) or to the version alone',
      'invalid-scope',
    );
  }
  if (environment !== undefined) checkEnvironment(environment);
  if (serverId === undefined) return environment === undefined ? 'org' : 'environment';
  if (versionId !== undefined) return 'version';
  return environment === undefined ? 'server' : 'server-environment';
}

function checkEnvironment(environment: string): void {
  if (!ENVIRONMENT_RE.test(environment)) {
    throw new BadRequestError(
      `environment ${JSON.stringify(environment)} must be 1-63 lowercase letters, digits or dashes, starting with a letter or digit (e.g. production)`,
      'invalid-environment',
    );
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new BadRequestError(
      `variable name ${JSON.stringify(name)} must be a letter or underscore followed by up to 127 letters, digits or underscores (${VARIABLE_NAME_PATTERN}), e.g. API_BASE_URL`,
      'invalid-variable-name',
    );
  }
}

function checkValue(value: string): void {
  if (typeof value !== 'string') {
    throw new BadRequestError('a variable value must be a string', 'invalid-value');
  }
  const size = Buffer.byteLength(value, 'utf8');
  if (size > MAX_VALUE_BYTES) {
    throw new BadRequestError(
      `the value is ${size} bytes; a variable holds at most ${MAX_VALUE_BYTES} bytes (64 KiB)`,
      'value-too-large',
    );
  }
  // Postgres text cannot hold NUL, and no process environment can either.
  if (value.includes('\u0000')) {
    throw new BadRequestError('a variable value cannot contain a NUL character', 'invalid-value');
  }
}

/** `server weather in production`, for messages; ids stand in for names the caller did not give. */
function describe(scope: ScopeRef): string {
  const server = scope.serverSlug ?? scope.serverId;
  switch (scopeName(scope)) {
    case 'org':
      return 'the org';
    case 'environment':
      return `environment ${scope.environment}`;
    case 'server':
      return `server ${server}`;
    case 'version':
      return `${server}@${scope.version ?? scope.versionId}`;
    case 'server-environment':
      return `server ${server} in ${scope.environment}`;
  }
}

/** Parameters $2..$4 of {@link scopeWhere}; a malformed id is a server or version that does not exist. */
function scopeParams(scope: ScopeRef): [string | null, string | null, string | null] {
  if (scope.serverId !== undefined && !UUID_RE.test(scope.serverId)) {
    throw new NotFoundError(`server ${scope.serverSlug ?? scope.serverId} was not found`, 'server-not-found');
  }
  if (scope.versionId !== undefined && !UUID_RE.test(scope.versionId)) {
    throw new NotFoundError(`version ${scope.version ?? scope.versionId} was not found`, 'version-not-found');
  }
  return [scope.serverId ?? null, scope.versionId ?? null, scope.environment ?? null];
}

const NO_ID = `'00000000-0000-0000-0000-000000000000'`;

/** Rows at exactly one scope ($1 org, $2 server, $3 version, $4 environment), in the unique index's terms. */
const scopeWhere = (v: string) =>
  `${v}.org_id = $1
   AND coalesce(${v}.server_id, ${NO_ID}) = coalesce($2::uuid, ${NO_ID})
   AND coalesce(${v}.version_id, ${NO_ID}) = coalesce($3::uuid, ${NO_ID})
   AND coalesce(${v}.environment, '') = coalesce($4::text, '')`;

function scopeOfRow(row: Pick<VariableRow, 'server_id' | 'version_id' | 'environment'>): ScopeName {
  if (row.server_id === null) return row.environment === null ? 'org' : 'environment';
  if (row.version_id !== null) return 'version';
  return row.environment === null ? 'server' : 'server-environment';
}

function toView(row: VariableRow): VariableView {
  const view: VariableView = {
    name: row.name,
    scope: scopeOfRow(row),
    environment: row.environment,
    secret: row.secret,
    revision: row.revision,
    updatedAt: row.updated_at.toISOString(),
    updatedBy: row.updated_by,
  };
  if (row.secret) view.fingerprint = row.fingerprint ?? '';
  else view.value = row.value ?? '';
  return view;
}

/** The scope with the names the store holds, checked to belong to the acting principal's org. */
interface Place {
  scope: ScopeName;
  server?: string;
  version?: string;
  environment?: string;
}

/**
 * Checks that the scope's server and version exist in the principal's org (and that a token limited
 * to some servers may touch them), and fills in their names for the audit trail.
 */
async function locate(tx: Queryable, principal: Principal, ref: ScopeRef): Promise<Place> {
  const scope = scopeName(ref);
  const [serverId, versionId, environment] = scopeParams(ref);
  const place: Place = { scope };
  if (environment !== null) place.environment = environment;
  if (serverId === null) {
    // Org- and environment-wide values reach every server, so a token limited to some cannot set them.
    if (principal.servers !== null) {
      throw new ForbiddenError(
        `this token (${principal.tokenName}) is limited to some servers; ${scope === 'org' ? 'org-wide' : 'environment-wide'} variables need a token for every server of @${principal.orgSlug}`,
        'server-limited-token',
      );
    }
    return place;
  }
  const [server] = await tx.query<{ slug: string }>(
    'SELECT slug FROM servers WHERE id = $1 AND org_id = $2',
    [serverId, principal.orgId],
  );
  const serverName = ref.serverSlug ?? serverId;
  if (!server) {
    throw new NotFoundError(
      `server ${serverName} was not found in @${principal.orgSlug}`,
      'server-not-found',
    );
  }
  assertServerAccess(principal, server.slug);
  place.server = server.slug;
  if (versionId !== null) {
    const [version] = await tx.query<{ version: string }>(
      'SELECT version FROM versions WHERE id = $1 AND server_id = $2 AND org_id = $3',
      [versionId, serverId, principal.orgId],
    );
    if (!version) {
      throw new NotFoundError(
        `version ${ref.version ?? versionId} of ${server.slug} was not found in @${principal.orgSlug}`,
        'version-not-found',
      );
    }
    place.version = version.version;
  }
  return place;
}

/**
 * What the audit trail records about a variable: where it is and, for a plain variable, its value.
 * A secret is recorded by revision and fingerprint only, never by value.
 */
function summary(place: Place, row: VariableRow, fingerprint: string | undefined) {
  return {
    name: row.name,
    ...place,
    revision: row.revision,
    ...(row.secret ? { fingerprint } : { value: row.value }),
  };
}

function kindConflict(name: string, ref: ScopeRef, place: Place, existingSecret: boolean): ConflictError {
  const where = describe({ ...ref, serverSlug: place.server, version: place.version });
  const [is, want] = existingSecret ? ['a secret', 'a plain variable'] : ['a plain variable', 'a secret'];
  return new ConflictError(
    `${name} is already ${is} at ${where}; delete it first to set it as ${want}`,
    'variable-kind-conflict',
  );
}

async function currentFingerprint(tx: Queryable, row: VariableRow): Promise<string | undefined> {
  const [r] = await tx.query<{ fingerprint: string }>(
    'SELECT fingerprint FROM secret_revisions WHERE variable_id = $1 AND revision = $2',
    [row.id, row.revision],
  );
  return r?.fingerprint;
}

/**
 * Sets a variable or secret at `scope`, creating it or replacing its value, with its audit event
 * (`variable.set` or `secret.set`) in the same transaction.
 *
 * A secret's value is sealed with `box` (bound to its row and revision) into a new revision; earlier
 * revisions stay as history and the variable's revision counts up. Setting a plain variable to
 * the value it has changes nothing and records nothing. A name keeps its kind at a scope: turning
 * a plain variable into a secret (or back) is a `variable-kind-conflict`, so a secret is never
 * downgraded to a readable value by accident. Concurrent sets of one name all succeed, one after another.
 */
export async function setVariable(
  db: Db,
  ctx: Context,
  box: SecretBox,
  scope: ScopeRef,
  name: string,
  input: { value: string; secret: boolean },
): Promise<VariableView> {
  scopeName(scope);
  checkName(name);
  checkValue(input.value);
  const secret = input.secret === true;
  const actor = ctx.principal.tokenName;
  return db.transaction(async (tx) => {
    const place = await locate(tx, ctx.principal, scope);
    const params = [ctx.principal.orgId, ...scopeParams(scope), name];
    // The row lock serialises sets of one name; an insert that loses a race finds the winner's row next time.
    for (let attempt = 0; attempt < 5; attempt++) {
      const [current] = await tx.query<VariableRow>(
        `SELECT v.* FROM variables v WHERE ${scopeWhere('v')} AND v.name = $5 FOR UPDATE`,
        params,
      );
      let row: VariableRow | undefined;
      let before: ReturnType<typeof summary> | null = null;
      if (current) {
        if (current.secret !== secret) throw kindConflict(name, scope, place, current.secret);
        if (!secret && current.value === input.value) return toView(current);
        before = summary(place, current, secret ? await currentFingerprint(tx, current) : undefined);
        [row] = await tx.query<VariableRow>(
          `UPDATE variables SET value = $2, revision = revision + 1, updated_at = now(), updated_by = $3
           WHERE id = $1 RETURNING *`,
          [current.id, secret ? null : input.value, actor],
        );
      } else {
        [row] = await tx.query<VariableRow>(
          `INSERT INTO variables (id, org_id, server_id, version_id, environment, name, secret, value, updated_by)
           VALUES ($6, $1, $2, $3, $4, $5, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING *`,
          [...params, newId(), secret, secret ? null : input.value, actor],
        );
        if (!row) continue;
      }
      if (!row) throw new Error(`variable ${name} vanished while it was locked`);
      let fingerprint: string | undefined;
      if (secret) {
        fingerprint = box.fingerprint(input.value);
        const sealed = box.seal(input.value, `${row.id}:${row.revision}`);
        await tx.query(
          `INSERT INTO secret_revisions (variable_id, revision, ciphertext, iv, tag, key_id, fingerprint, created_by)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [row.id, row.revision, sealed.ciphertext, sealed.iv, sealed.tag, sealed.keyId, fingerprint, actor],
        );
      }
      await appendAudit(tx, ctx, {
        action: secret ? 'secret.set' : 'variable.set',
        target: { type: secret ? 'secret' : 'variable', id: row.id, name },
        before,
        after: summary(place, row, fingerprint),
      });
      return toView({ ...row, fingerprint: fingerprint ?? null });
    }
    throw new ConflictError(
      `${name} kept changing while it was being set; try again`,
      'variable-concurrent-change',
    );
  });
}

async function findVariable(
  db: Queryable,
  orgId: string,
  scope: ScopeRef,
  name: string,
  options: { forUpdate?: boolean } = {},
): Promise<VariableRow> {
  scopeName(scope);
  checkName(name);
  const [row] = await db.query<VariableRow>(
    `SELECT v.*, (SELECT r.fingerprint FROM secret_revisions r WHERE r.variable_id = v.id AND r.revision = v.revision) AS fingerprint
     FROM variables v WHERE ${scopeWhere('v')} AND v.name = $5${options.forUpdate ? ' FOR UPDATE OF v' : ''}`,
    [orgId, ...scopeParams(scope), name],
  );
  if (!row) {
    throw new NotFoundError(`variable ${name} was not found at ${describe(scope)}`, 'variable-not-found');
  }
  return row;
}

/** The variables and secrets set at exactly `scope` (not inherited ones), sorted by name; no secret values. */
export async function listVariables(db: Queryable, orgId: string, scope: ScopeRef): Promise<VariableView[]> {
  scopeName(scope);
  const rows = await db.query<VariableRow>(
    `SELECT v.*, r.fingerprint FROM variables v
     LEFT JOIN secret_revisions r ON r.variable_id = v.id AND r.revision = v.revision
     WHERE ${scopeWhere('v')} ORDER BY v.name COLLATE "C"`,
    [orgId, ...scopeParams(scope)],
  );
  return rows.map(toView);
}

/** One variable or secret at exactly `scope`; a secret's view has its fingerprint, never its value. */
export async function getVariable(
  db: Queryable,
  orgId: string,
  scope: ScopeRef,
  name: string,
): Promise<VariableView> {
  return toView(await findVariable(db, orgId, scope, name));
}

/**
 * Deletes a variable, or a secret with every revision of it, audited as `variable.delete` or
 * `secret.delete`. Returns what was deleted (without a secret's value).
 */
export async function deleteVariable(
  db: Db,
  ctx: Context,
  scope: ScopeRef,
  name: string,
): Promise<VariableView> {
  scopeName(scope);
  checkName(name);
  return db.transaction(async (tx) => {
    const place = await locate(tx, ctx.principal, scope);
    const row = await findVariable(
      tx,
      ctx.principal.orgId,
      { ...scope, serverSlug: place.server, version: place.version },
      name,
      { forUpdate: true },
    );
    await tx.query('DELETE FROM secret_revisions WHERE variable_id = $1', [row.id]);
    await tx.query('DELETE FROM variables WHERE id = $1', [row.id]);
    await appendAudit(tx, ctx, {
      action: row.secret ? 'secret.delete' : 'variable.delete',
      target: { type: row.secret ? 'secret' : 'variable', id: row.id, name },
      before: summary(place, row, row.fingerprint ?? undefined),
    });
    return toView(row);
  });
}

/** A secret's revisions, newest first: who set each, when, under which key, and its fingerprint. */
export async function secretHistory(
  db: Queryable,
  orgId: string,
  scope: ScopeRef,
  name: string,
): Promise<SecretRevision[]> {
  const variable = await findVariable(db, orgId, scope, name);
  if (!variable.secret) {
    throw new BadRequestError(
      `${name} at ${describe(scope)} is a plain variable; only secrets keep a revision history`,
      'not-a-secret',
    );
  }
  const rows = await db.query<{
    revision: number;
    fingerprint: string;
    key_id: string;
    created_at: Date;
    created_by: string;
  }>(
    `SELECT revision, fingerprint, key_id, created_at, created_by FROM secret_revisions
     WHERE variable_id = $1 ORDER BY revision DESC`,
    [variable.id],
  );
  return rows.map((r) => ({
    revision: r.revision,
    fingerprint: r.fingerprint,
    keyId: r.key_id,
    createdAt: r.created_at.toISOString(),
    createdBy: r.created_by,
  }));
}

interface ResolveRow {
  id: string;
  name: string;
  secret: boolean;
  value: string | null;
  revision: number;
  server_id: string | null;
  version_id: string | null;
  environment: string | null;
  ciphertext: string | null;
  iv: string | null;
  tag: string | null;
  key_id: string | null;
}

/**
 * The variables a version of a server gets in `environment` (or with no environment): every
 * applicable scope merged, the most specific winning (see {@link SCOPE_NAMES}), secrets decrypted.
 *
 * This is the only function that returns secret values. Callers must check that the principal
 * holds the `deploy` permission for the server and record the read in the audit trail before
 * handing the result to anyone; never log it or put it in an API response body by default.
 *
 * Throws `server-not-found` / `version-not-found` when the version is not the server's in this
 * org, and an Error naming the variable when a secret cannot be opened (another key, or tampered).
 */
export async function resolveVariables(
  db: Queryable,
  box: SecretBox,
  orgId: string,
  target: { serverId: string; versionId: string; environment?: string | undefined },
): Promise<Record<string, ResolvedVariable>> {
  if (target.environment !== undefined) checkEnvironment(target.environment);
  const [serverId, versionId] = scopeParams({ serverId: target.serverId, versionId: target.versionId });
  const [found] = await db.query<{ ok: number }>(
    `SELECT 1 AS ok FROM versions v JOIN servers s ON s.id = v.server_id
     WHERE v.id = $1 AND s.id = $2 AND s.org_id = $3 AND v.org_id = $3`,
    [versionId, serverId, orgId],
  );
  if (!found) {
    throw new NotFoundError(`version ${versionId} of server ${serverId} was not found`, 'version-not-found');
  }
  // One statement, so the variables and their current revisions come from one snapshot.
  const rows = await db.query<ResolveRow>(
    `SELECT v.id, v.name, v.secret, v.value, v.revision, v.server_id, v.version_id, v.environment,
            r.ciphertext, r.iv, r.tag, r.key_id
     FROM variables v
     LEFT JOIN secret_revisions r ON v.secret AND r.variable_id = v.id AND r.revision = v.revision
     WHERE v.org_id = $1
       AND ((v.version_id IS NULL AND (v.server_id IS NULL OR v.server_id = $2)
             AND (v.environment IS NULL OR v.environment = $4::text))
         OR (v.server_id = $2 AND v.version_id = $3))`,
    [orgId, serverId, versionId, target.environment ?? null],
  );
  const winners = new Map<string, ResolveRow & { scope: ScopeName }>();
  for (const row of rows) {
    const scope = scopeOfRow(row);
    const held = winners.get(row.name);
    if (!held || PRECEDENCE[scope] > PRECEDENCE[held.scope]) winners.set(row.name, { ...row, scope });
  }
  const names = [...winners.keys()].sort();
  // Object.fromEntries defines own properties, so a variable named __proto__ stays a variable.
  return Object.fromEntries(
    names.map((name) => {
      const row = winners.get(name) as ResolveRow & { scope: ScopeName };
      return [
        name,
        { value: row.secret ? open(box, row) : (row.value ?? ''), secret: row.secret, scope: row.scope },
      ];
    }),
  );
}

function open(box: SecretBox, row: ResolveRow & { scope: ScopeName }): string {
  const where = `secret ${row.name} (${row.scope} scope, revision ${row.revision})`;
  if (row.ciphertext === null || row.iv === null || row.tag === null || row.key_id === null) {
    throw new Error(`${where} has no stored value for its current revision`);
  }
  try {
    return box.open(
      { ciphertext: row.ciphertext, iv: row.iv, tag: row.tag, keyId: row.key_id },
      `${row.id}:${row.revision}`,
    );
  } catch (error) {
    throw new Error(`cannot open ${where}: ${(error as Error).message}`, { cause: error });
  }
}
