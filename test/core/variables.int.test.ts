import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit, verifyAuditChain } from '#core/audit/log.ts';
import type { Context, Principal } from '#core/auth/principal.ts';
import { createSecretBox } from '#core/crypto/secret-box.ts';
import { loadSecretKey } from '#core/crypto/secret-key.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import {
  AppError,
  BadRequestError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
  StartupError,
} from '#core/errors.ts';
import { createLogger } from '#core/logger.ts';
import { bootstrap, createOrg, systemPrincipal, type Org } from '#core/orgs.ts';
import {
  deleteVariable,
  getVariable,
  listVariables,
  MAX_VALUE_BYTES,
  resolveVariables,
  scopeName,
  secretHistory,
  setVariable,
  type ScopeRef,
} from '#core/registry/variables.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

/** What `action` fails with (a rejection or a synchronous throw), so a test can check its class and code. */
async function rejection(action: () => Promise<unknown>): Promise<AppError> {
  try {
    await action();
  } catch (error) {
    if (error instanceof AppError) return error;
    throw error;
  }
  throw new Error('expected the action to fail, but it succeeded');
}

const unique = (label: string) => `${label}_${randomBytes(4).toString('hex')}`;
const box = createSecretBox(randomBytes(32));

function tokenPrincipal(org: Org, name: string, servers: string[] | null = null): Principal {
  return {
    orgId: org.id,
    orgSlug: org.slug,
    tokenId: randomUUID(),
    tokenName: name,
    permissions: ['admin'],
    servers,
  };
}

interface Fixture {
  serverId: string;
  serverSlug: string;
  versionId: string;
  version: string;
}

describe.each(DB_DRIVERS)('variables and secrets on $name', (driver) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  let org: Org;
  let ctx: Context;

  beforeAll(async () => {
    ({ db, cleanup } = await driver.open());
    await migrateDb(db);
    ({ org } = await bootstrap(db));
    ctx = { principal: tokenPrincipal(org, 'release-bot') };
  });

  afterAll(async () => {
    await cleanup?.();
  });

  /** A server with one version, inserted directly: the registry's own functions are not under test. */
  async function makeServer(
    orgId = org.id,
    versions = ['1.0.0'],
  ): Promise<Fixture & { versionIds: string[] }> {
    const serverId = randomUUID();
    const serverSlug = unique('srv').replace(/_/g, '-');
    await db.query('INSERT INTO servers (id, org_id, slug, name) VALUES ($1, $2, $3, $3)', [
      serverId,
      orgId,
      serverSlug,
    ]);
    const versionIds: string[] = [];
    for (const version of versions) {
      const versionId = randomUUID();
      await db.query(
        `INSERT INTO versions (id, org_id, server_id, version, version_key, prerelease, status, config, created_by)
         VALUES ($1, $2, $3, $4, $4, false, 'development', '{}'::jsonb, 'test')`,
        [versionId, orgId, serverId, version],
      );
      versionIds.push(versionId);
    }
    return {
      serverId,
      serverSlug,
      versionId: versionIds[0] as string,
      version: versions[0] as string,
      versionIds,
    };
  }

  async function count(sql: string, params: unknown[] = []): Promise<number> {
    const [row] = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${sql}`, params);
    return row?.n ?? -1;
  }

  async function auditHead(orgId = org.id): Promise<number> {
    const [row] = await db.query<{ seq: number }>('SELECT seq FROM audit_heads WHERE org_id = $1', [orgId]);
    return row?.seq ?? 0;
  }

  /** Every row of the tables that could hold a value, as JSON text. */
  async function everything(): Promise<string> {
    const tables = ['variables', 'secret_revisions', 'audit_events'];
    const dumps = await Promise.all(
      tables.map((t) => db.query<{ row: string }>(`SELECT row_to_json(t)::text AS row FROM ${t} t`)),
    );
    return dumps
      .flat()
      .map((r) => r.row)
      .join('\n');
  }

  const scopes = (f: Fixture) => ({
    org: {} satisfies ScopeRef,
    environment: { environment: 'production' } satisfies ScopeRef,
    server: { serverId: f.serverId, serverSlug: f.serverSlug } satisfies ScopeRef,
    version: { serverId: f.serverId, versionId: f.versionId, version: f.version } satisfies ScopeRef,
    'server-environment': { serverId: f.serverId, environment: 'production' } satisfies ScopeRef,
  });

  describe('precedence', () => {
    it('names the five scopes from what is set', () => {
      const f = { serverId: randomUUID(), serverSlug: 's', versionId: randomUUID(), version: '1.0.0' };
      for (const [name, scope] of Object.entries(scopes(f))) expect(scopeName(scope)).toBe(name);
    });

    it('resolves the most specific scope, falling back as each is removed', async () => {
      const f = await makeServer();
      const name = unique('LOG_LEVEL');
      const s = scopes(f);
      const target = { serverId: f.serverId, versionId: f.versionId };
      for (const [scope, ref] of Object.entries(s)) {
        await setVariable(db, ctx, box, ref, name, { value: `from-${scope}`, secret: false });
      }
      const resolved = async (environment?: string) =>
        (await resolveVariables(db, box, org.id, { ...target, environment }))[name];

      expect(await resolved('production')).toEqual({
        value: 'from-server-environment',
        secret: false,
        scope: 'server-environment',
      });
      expect(await resolved('staging')).toMatchObject({ value: 'from-version', scope: 'version' });
      expect(await resolved()).toMatchObject({ value: 'from-version', scope: 'version' });

      await deleteVariable(db, ctx, s['server-environment'], name);
      expect(await resolved('production')).toMatchObject({ value: 'from-version', scope: 'version' });

      await deleteVariable(db, ctx, s.version, name);
      expect(await resolved('production')).toMatchObject({ value: 'from-server', scope: 'server' });
      expect(await resolved('staging')).toMatchObject({ value: 'from-server', scope: 'server' });

      await deleteVariable(db, ctx, s.server, name);
      expect(await resolved('production')).toMatchObject({ value: 'from-environment', scope: 'environment' });
      expect(await resolved('staging')).toMatchObject({ value: 'from-org', scope: 'org' });
      expect(await resolved()).toMatchObject({ value: 'from-org', scope: 'org' });

      await deleteVariable(db, ctx, s.environment, name);
      expect(await resolved('production')).toMatchObject({ value: 'from-org', scope: 'org' });

      await deleteVariable(db, ctx, s.org, name);
      expect(await resolved('production')).toBeUndefined();
    });

    it("ignores another server's and another version's variables", async () => {
      const f = await makeServer(org.id, ['1.0.0', '2.0.0']);
      const other = await makeServer();
      const name = unique('ENDPOINT');
      await setVariable(db, ctx, box, { serverId: other.serverId }, name, {
        value: 'other-server',
        secret: false,
      });
      await setVariable(db, ctx, box, { serverId: other.serverId, environment: 'production' }, name, {
        value: 'other-server-prod',
        secret: false,
      });
      await setVariable(db, ctx, box, { serverId: f.serverId, versionId: f.versionIds[1] }, name, {
        value: 'v2',
        secret: false,
      });

      const v1 = await resolveVariables(db, box, org.id, {
        serverId: f.serverId,
        versionId: f.versionId,
        environment: 'production',
      });
      const v2 = await resolveVariables(db, box, org.id, {
        serverId: f.serverId,
        versionId: f.versionIds[1] as string,
        environment: 'production',
      });

      expect(v1[name]).toBeUndefined();
      expect(v2[name]).toMatchObject({ value: 'v2', scope: 'version' });
    });

    it('merges names from every scope and decrypts the winning secrets', async () => {
      const f = await makeServer();
      const [a, b, c] = [unique('A'), unique('B'), unique('C')];
      await setVariable(db, ctx, box, {}, a, { value: 'org-a', secret: false });
      await setVariable(db, ctx, box, { serverId: f.serverId }, b, {
        value: 'server-secret-b',
        secret: true,
      });
      await setVariable(db, ctx, box, { serverId: f.serverId, environment: 'staging' }, c, {
        value: 'staging-secret-c',
        secret: true,
      });

      const resolved = await resolveVariables(db, box, org.id, {
        serverId: f.serverId,
        versionId: f.versionId,
        environment: 'staging',
      });

      expect(resolved[a]).toEqual({ value: 'org-a', secret: false, scope: 'org' });
      expect(resolved[b]).toEqual({ value: 'server-secret-b', secret: true, scope: 'server' });
      expect(resolved[c]).toEqual({ value: 'staging-secret-c', secret: true, scope: 'server-environment' });
    });

    it('keeps a variable named __proto__ as a variable', async () => {
      const f = await makeServer();
      await setVariable(db, ctx, box, { serverId: f.serverId }, '__proto__', { value: 'x', secret: false });

      const resolved = await resolveVariables(db, box, org.id, {
        serverId: f.serverId,
        versionId: f.versionId,
      });

      expect(Object.getPrototypeOf(resolved)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(resolved, '__proto__')?.value).toMatchObject({ value: 'x' });
      await deleteVariable(db, ctx, { serverId: f.serverId }, '__proto__');
    });
  });

  describe('secrets', () => {
    it('stores only ciphertext: no row of variables, secret_revisions or audit_events holds the value', async () => {
      const f = await makeServer();
      const value = `plain-${randomBytes(12).toString('hex')}`;
      const name = unique('API_KEY');

      const view = await setVariable(
        db,
        ctx,
        box,
        { serverId: f.serverId, environment: 'production' },
        name,
        {
          value,
          secret: true,
        },
      );

      const [row] = await db.query<{ value: string | null; ciphertext: string; key_id: string }>(
        `SELECT v.value, r.ciphertext, r.key_id FROM variables v JOIN secret_revisions r ON r.variable_id = v.id
         WHERE v.org_id = $1 AND v.name = $2`,
        [org.id, name],
      );
      expect(row?.value).toBeNull();
      expect(row?.ciphertext).not.toBe(value);
      expect(Buffer.from(row?.ciphertext ?? '', 'base64').toString('utf8')).not.toContain(value);
      expect(row?.key_id).toBe(box.keyId);
      const dump = await everything();
      expect(dump).toContain(view.fingerprint);
      expect(dump).not.toContain(value);
      expect(dump).not.toContain(Buffer.from(value).toString('base64'));
    });

    it('records name, scope, revision and fingerprint in the audit trail, never the value', async () => {
      const f = await makeServer();
      const name = unique('TOKEN');

      const view = await setVariable(db, ctx, box, { serverId: f.serverId, serverSlug: f.serverSlug }, name, {
        value: 'v1-value',
        secret: true,
      });

      const [event] = (await listAudit(db, org.id, { action: 'secret.set', target: name })).events;
      expect(event?.actor.name).toBe('release-bot');
      expect(event?.target).toMatchObject({ type: 'secret', name });
      expect(event?.before).toBeNull();
      expect(event?.after).toEqual({
        name,
        scope: 'server',
        server: f.serverSlug,
        revision: 1,
        fingerprint: view.fingerprint,
      });
    });

    it('never puts a secret value in a view', async () => {
      const f = await makeServer();
      const scope = { serverId: f.serverId, versionId: f.versionId };
      const value = `plain-${randomBytes(12).toString('hex')}`;
      const name = unique('DB_PASSWORD');

      const views = [
        await setVariable(db, ctx, box, scope, name, { value, secret: true }),
        await getVariable(db, org.id, scope, name),
        ...(await listVariables(db, org.id, scope)),
      ];

      for (const view of views) {
        expect(view).not.toHaveProperty('value');
        expect(view).toMatchObject({
          name,
          scope: 'version',
          secret: true,
          revision: 1,
          updatedBy: 'release-bot',
        });
        expect(view.fingerprint).toBe(box.fingerprint(value));
        expect(JSON.stringify(view)).not.toContain(value);
      }
    });

    it('keeps every revision on rotation, newest first, and resolves the latest', async () => {
      const f = await makeServer();
      const scope = { serverId: f.serverId };
      const name = unique('SIGNING_KEY');

      for (const value of ['first', 'second', 'third'])
        await setVariable(db, ctx, box, scope, name, { value, secret: true });

      const history = await secretHistory(db, org.id, scope, name);
      expect(history.map((h) => h.revision)).toEqual([3, 2, 1]);
      expect(history.map((h) => h.fingerprint)).toEqual(['third', 'second', 'first'].map(box.fingerprint));
      expect(new Set(history.map((h) => h.fingerprint)).size).toBe(3);
      expect(history[0]).toMatchObject({ keyId: box.keyId, createdBy: 'release-bot' });
      expect(await getVariable(db, org.id, scope, name)).toMatchObject({
        revision: 3,
        fingerprint: box.fingerprint('third'),
      });
      const resolved = await resolveVariables(db, box, org.id, {
        serverId: f.serverId,
        versionId: f.versionId,
      });
      expect(resolved[name]).toEqual({ value: 'third', secret: true, scope: 'server' });
      const events = (await listAudit(db, org.id, { action: 'secret.set', target: name })).events;
      expect(events.map((e) => (e.after as { revision: number }).revision)).toEqual([3, 2, 1]);
      expect(events[0]?.before).toMatchObject({ revision: 2, fingerprint: box.fingerprint('second') });
    });

    it('refuses to open a secret under another key, naming both keys, and one copied to another row', async () => {
      const f = await makeServer();
      const name = unique('COPIED');
      const target = { serverId: f.serverId, versionId: f.versionId };
      await setVariable(db, ctx, box, { serverId: f.serverId }, name, { value: 'one', secret: true });
      const otherBox = createSecretBox(randomBytes(32));

      await expect(resolveVariables(db, otherBox, org.id, target)).rejects.toThrow(
        `secret was sealed with key ${box.keyId}, but the configured key is ${otherBox.keyId}`,
      );

      const other = unique('TARGET');
      await setVariable(db, ctx, box, { serverId: f.serverId }, other, { value: 'two', secret: true });
      await db.query(
        `UPDATE secret_revisions t SET ciphertext = s.ciphertext, iv = s.iv, tag = s.tag
         FROM secret_revisions s JOIN variables sv ON sv.id = s.variable_id, variables tv
         WHERE sv.name = $1 AND tv.name = $2 AND t.variable_id = tv.id`,
        [name, other],
      );
      await expect(resolveVariables(db, box, org.id, target)).rejects.toThrow(
        new RegExp(`cannot open secret ${other} .*secret failed authentication`),
      );
      await deleteVariable(db, ctx, { serverId: f.serverId }, other);
    });

    it('deletes a secret with its history, recorded in the audit trail', async () => {
      const f = await makeServer();
      const scope = { serverId: f.serverId, environment: 'staging' };
      const name = unique('WEBHOOK_SECRET');
      await setVariable(db, ctx, box, scope, name, { value: 'one', secret: true });
      const view = await setVariable(db, ctx, box, scope, name, { value: 'two', secret: true });
      const [{ id } = { id: '' }] = await db.query<{ id: string }>(
        'SELECT id FROM variables WHERE org_id = $1 AND name = $2',
        [org.id, name],
      );

      const deleted = await deleteVariable(db, ctx, scope, name);

      expect(deleted).toMatchObject({ name, secret: true, revision: 2, fingerprint: view.fingerprint });
      expect(deleted).not.toHaveProperty('value');
      expect(await count('variables WHERE id = $1', [id])).toBe(0);
      expect(await count('secret_revisions WHERE variable_id = $1', [id])).toBe(0);
      expect(await rejection(() => getVariable(db, org.id, scope, name))).toMatchObject({
        code: 'variable-not-found',
      });
      expect(await rejection(() => secretHistory(db, org.id, scope, name))).toMatchObject({
        code: 'variable-not-found',
      });
      const [event] = (await listAudit(db, org.id, { action: 'secret.delete', target: name })).events;
      expect(event?.target).toMatchObject({ type: 'secret', id, name });
      expect(event?.before).toEqual({
        name,
        scope: 'server-environment',
        server: f.serverSlug,
        environment: 'staging',
        revision: 2,
        fingerprint: view.fingerprint,
      });
      expect(event?.after).toBeNull();
      const error = await rejection(() => deleteVariable(db, ctx, scope, name));
      expect(error).toBeInstanceOf(NotFoundError);
      expect(error.code).toBe('variable-not-found');
    });

    it('lets ten concurrent sets of one new secret all succeed, one revision each', async () => {
      const f = await makeServer();
      const scope = { serverId: f.serverId, environment: 'production' };
      const name = unique('RACED');
      const values = Array.from({ length: 10 }, (_, i) => `value-${i}`);

      const results = await Promise.allSettled(
        values.map((value) => setVariable(db, ctx, box, scope, name, { value, secret: true })),
      );

      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      const history = await secretHistory(db, org.id, scope, name);
      expect(history.map((h) => h.revision)).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
      expect(new Set(history.map((h) => h.fingerprint))).toEqual(new Set(values.map(box.fingerprint)));
      expect(await count('variables WHERE org_id = $1 AND name = $2', [org.id, name])).toBe(1);
      const resolved = await resolveVariables(db, box, org.id, {
        serverId: f.serverId,
        versionId: f.versionId,
        environment: 'production',
      });
      expect(box.fingerprint(resolved[name]?.value ?? '')).toBe(history[0]?.fingerprint);
      expect(
        (await listAudit(db, org.id, { action: 'secret.set', target: name, limit: 100 })).events,
      ).toHaveLength(10);
      expect((await verifyAuditChain(db, org.id)).ok).toBe(true);
    });
  });

  describe('plain variables', () => {
    it('stores the value, counts revisions and audits each change with before and after', async () => {
      const f = await makeServer();
      const scope = { serverId: f.serverId };
      const name = unique('API_BASE_URL');

      const first = await setVariable(db, ctx, box, scope, name, {
        value: 'https://a.example',
        secret: false,
      });
      const second = await setVariable(db, ctx, box, scope, name, {
        value: 'https://b.example',
        secret: false,
      });

      expect(first).toMatchObject({
        name,
        scope: 'server',
        environment: null,
        secret: false,
        value: 'https://a.example',
        revision: 1,
      });
      expect(second).toMatchObject({ value: 'https://b.example', revision: 2, updatedBy: 'release-bot' });
      expect(second).not.toHaveProperty('fingerprint');
      const [event] = (await listAudit(db, org.id, { action: 'variable.set', target: name })).events;
      expect(event?.target).toMatchObject({ type: 'variable', name });
      expect(event?.before).toMatchObject({ value: 'https://a.example', revision: 1 });
      expect(event?.after).toMatchObject({ value: 'https://b.example', revision: 2, server: f.serverSlug });
    });

    it('changes and records nothing when set to the value it has', async () => {
      const name = unique('REGION');
      const first = await setVariable(db, ctx, box, {}, name, { value: 'eu-west-1', secret: false });
      const head = await auditHead();

      const again = await setVariable(db, ctx, box, {}, name, { value: 'eu-west-1', secret: false });

      expect(again).toEqual(first);
      expect(await auditHead()).toBe(head);
      await deleteVariable(db, ctx, {}, name);
    });

    it('lists exactly one scope, sorted by name', async () => {
      const f = await makeServer();
      const scope = { serverId: f.serverId, environment: 'canary' };
      for (const name of ['b_VAR', 'A_VAR', 'Z_SECRET', '_UNDERSCORE']) {
        await setVariable(db, ctx, box, scope, name, {
          value: name.toLowerCase(),
          secret: name.includes('SECRET'),
        });
      }
      await setVariable(db, ctx, box, { serverId: f.serverId }, 'NOT_LISTED', { value: 'x', secret: false });

      const views = await listVariables(db, org.id, scope);

      expect(views.map((v) => v.name)).toEqual(['A_VAR', 'Z_SECRET', '_UNDERSCORE', 'b_VAR']);
      expect(views.every((v) => v.scope === 'server-environment' && v.environment === 'canary')).toBe(true);
      expect(views.find((v) => v.name === 'Z_SECRET')).not.toHaveProperty('value');
    });

    it('deletes a plain variable, recorded as variable.delete', async () => {
      const name = unique('FEATURE_FLAG');
      await setVariable(db, ctx, box, { environment: 'staging' }, name, { value: 'on', secret: false });

      await deleteVariable(db, ctx, { environment: 'staging' }, name);

      expect(await count('variables WHERE org_id = $1 AND name = $2', [org.id, name])).toBe(0);
      const [event] = (await listAudit(db, org.id, { action: 'variable.delete', target: name })).events;
      expect(event?.before).toMatchObject({
        name,
        scope: 'environment',
        environment: 'staging',
        value: 'on',
      });
    });
  });

  describe('bad input changes nothing', () => {
    async function expectNothingWritten(action: () => Promise<unknown>): Promise<AppError> {
      const rows = await count('variables');
      const revisions = await count('secret_revisions');
      const head = await auditHead();
      const error = await rejection(action);
      expect(await count('variables')).toBe(rows);
      expect(await count('secret_revisions')).toBe(revisions);
      expect(await auditHead()).toBe(head);
      return error;
    }

    it('refuses a name that is not a letter or underscore then letters, digits or underscores', async () => {
      for (const name of [
        '1ABC',
        'HAS-DASH',
        'WITH SPACE',
        '',
        'A'.repeat(129),
        "X'); DROP TABLE variables; --",
        'ÄPI',
      ]) {
        for (const secret of [false, true]) {
          const error = await expectNothingWritten(() =>
            setVariable(db, ctx, box, {}, name, { value: 'v', secret }),
          );
          expect(error).toBeInstanceOf(BadRequestError);
          expect(error.code).toBe('invalid-variable-name');
          expect(error.message).toContain('API_BASE_URL');
          expect(error.message).toContain('^[A-Za-z_][A-Za-z0-9_]{0,127}$');
        }
      }
      await setVariable(db, ctx, box, {}, 'A'.repeat(128), { value: 'longest name', secret: false });
      await deleteVariable(db, ctx, {}, 'A'.repeat(128));
    });

    it('refuses a version without its server, and a version with an environment', async () => {
      const f = await makeServer();
      for (const scope of [
        { versionId: f.versionId },
        { versionId: f.versionId, environment: 'production' },
        { serverId: f.serverId, versionId: f.versionId, environment: 'production' },
      ]) {
        const error = await expectNothingWritten(() =>
          setVariable(db, ctx, box, scope, 'SCOPED', { value: 'v', secret: true }),
        );
        expect(error).toBeInstanceOf(BadRequestError);
        expect(error.code).toBe('invalid-scope');
        expect(await rejection(() => listVariables(db, org.id, scope))).toMatchObject({
          code: 'invalid-scope',
        });
      }
    });

    it('refuses an environment name that is not lowercase letters, digits and dashes', async () => {
      const f = await makeServer();
      for (const environment of ['Production', '-prod', 'prod env', '', 'a'.repeat(64), 'prod/eu']) {
        for (const scope of [{ environment }, { serverId: f.serverId, environment }]) {
          const error = await expectNothingWritten(() =>
            setVariable(db, ctx, box, scope, 'ENV_VAR', { value: 'v', secret: false }),
          );
          expect(error).toBeInstanceOf(BadRequestError);
          expect(error.code).toBe('invalid-environment');
        }
        expect(
          await rejection(() =>
            resolveVariables(db, box, org.id, { serverId: f.serverId, versionId: f.versionId, environment }),
          ),
        ).toMatchObject({ code: 'invalid-environment' });
      }
    });

    it('refuses a value over 64 KiB (counted in UTF-8 bytes) and takes one of exactly 64 KiB', async () => {
      const name = unique('BIG');
      for (const value of ['x'.repeat(MAX_VALUE_BYTES + 1), 'é'.repeat(MAX_VALUE_BYTES / 2 + 1)]) {
        for (const secret of [false, true]) {
          const error = await expectNothingWritten(() =>
            setVariable(db, ctx, box, {}, name, { value, secret }),
          );
          expect(error).toBeInstanceOf(BadRequestError);
          expect(error.code).toBe('value-too-large');
        }
      }
      const view = await setVariable(db, ctx, box, {}, name, {
        value: 'x'.repeat(MAX_VALUE_BYTES),
        secret: true,
      });
      expect(view.revision).toBe(1);
      await deleteVariable(db, ctx, {}, name);
    });

    it('refuses a value with a NUL character', async () => {
      const error = await expectNothingWritten(() =>
        setVariable(db, ctx, box, {}, unique('NUL'), { value: 'a\u0000b', secret: false }),
      );
      expect(error.code).toBe('invalid-value');
    });

    it('refuses to turn a plain variable into a secret or back at one scope', async () => {
      const f = await makeServer();
      const scope = { serverId: f.serverId };
      const plain = unique('PLAIN');
      const secret = unique('SECRET');
      await setVariable(db, ctx, box, scope, plain, { value: 'visible', secret: false });
      await setVariable(db, ctx, box, scope, secret, { value: 'hidden', secret: true });

      for (const [name, asSecret] of [
        [plain, true],
        [secret, false],
      ] as const) {
        const error = await expectNothingWritten(() =>
          setVariable(db, ctx, box, scope, name, { value: 'changed', secret: asSecret }),
        );
        expect(error).toBeInstanceOf(ConflictError);
        expect(error.code).toBe('variable-kind-conflict');
        expect(error.message).toContain('delete it first');
      }
      expect(await getVariable(db, org.id, scope, plain)).toMatchObject({ value: 'visible', revision: 1 });
      expect(await getVariable(db, org.id, scope, secret)).toMatchObject({ revision: 1 });
      // Another scope is another variable: the kind may differ there.
      await setVariable(db, ctx, box, {}, plain, { value: 'org-secret', secret: true });
      await deleteVariable(db, ctx, {}, plain);
    });

    it("refuses a server or version that is not the org's", async () => {
      const f = await makeServer();
      const other = await makeServer();
      for (const [scope, code] of [
        [{ serverId: randomUUID() }, 'server-not-found'],
        [{ serverId: 'not-a-uuid' }, 'server-not-found'],
        [{ serverId: f.serverId, versionId: other.versionId }, 'version-not-found'],
        [{ serverId: f.serverId, versionId: randomUUID() }, 'version-not-found'],
      ] as const) {
        const error = await expectNothingWritten(() =>
          setVariable(db, ctx, box, scope, 'WHERE', { value: 'v', secret: true }),
        );
        expect(error).toBeInstanceOf(NotFoundError);
        expect(error.code).toBe(code);
      }
      expect(
        await rejection(() =>
          resolveVariables(db, box, org.id, { serverId: f.serverId, versionId: other.versionId }),
        ),
      ).toMatchObject({ code: 'version-not-found' });
    });

    it('refuses org-wide changes from a token limited to some servers, and hides the other servers', async () => {
      const f = await makeServer();
      const other = await makeServer();
      const limited: Context = { principal: tokenPrincipal(org, 'limited', [f.serverSlug]) };

      for (const scope of [{}, { environment: 'production' }]) {
        const error = await expectNothingWritten(() =>
          setVariable(db, limited, box, scope, 'WIDE', { value: 'v', secret: false }),
        );
        expect(error).toBeInstanceOf(ForbiddenError);
      }
      const hidden = await expectNothingWritten(() =>
        setVariable(db, limited, box, { serverId: other.serverId }, 'HIDDEN', { value: 'v', secret: false }),
      );
      expect(hidden.code).toBe('server-not-found');
      const allowed = await setVariable(db, limited, box, { serverId: f.serverId }, 'MINE', {
        value: 'v',
        secret: false,
      });
      expect(allowed.updatedBy).toBe('limited');
    });

    it('reports a plain variable as having no secret history', async () => {
      const name = unique('PLAIN_HISTORY');
      await setVariable(db, ctx, box, {}, name, { value: 'v', secret: false });

      expect(await rejection(() => secretHistory(db, org.id, {}, name))).toMatchObject({
        code: 'not-a-secret',
      });
      await deleteVariable(db, ctx, {}, name);
    });
  });

  describe('org isolation', () => {
    it("never shows, resolves or changes another org's variables", async () => {
      const admin: Context = { principal: systemPrincipal(org) };
      const { org: tenant } = await createOrg(db, admin, { slug: unique('tenant').replace(/_/g, '-') });
      const tenantCtx: Context = { principal: tokenPrincipal(tenant, 'tenant-bot') };
      const f = await makeServer();
      const name = unique('SHARED_NAME');
      await setVariable(db, ctx, box, {}, name, { value: 'org-a-plain', secret: false });
      await setVariable(db, ctx, box, { serverId: f.serverId }, name, {
        value: 'org-a-secret',
        secret: true,
      });
      await setVariable(db, tenantCtx, box, {}, name, { value: 'tenant-value', secret: false });

      expect((await listVariables(db, tenant.id, {})).map((v) => [v.name, v.value])).toEqual([
        [name, 'tenant-value'],
      ]);
      expect(await getVariable(db, org.id, {}, name)).toMatchObject({ value: 'org-a-plain' });
      expect(await listVariables(db, tenant.id, { serverId: f.serverId })).toEqual([]);
      expect(await rejection(() => getVariable(db, tenant.id, { serverId: f.serverId }, name))).toMatchObject(
        {
          code: 'variable-not-found',
        },
      );
      expect(
        await rejection(() => secretHistory(db, tenant.id, { serverId: f.serverId }, name)),
      ).toMatchObject({
        code: 'variable-not-found',
      });
      expect(
        await rejection(() =>
          resolveVariables(db, box, tenant.id, { serverId: f.serverId, versionId: f.versionId }),
        ),
      ).toMatchObject({ code: 'version-not-found' });
      for (const action of [
        () =>
          setVariable(db, tenantCtx, box, { serverId: f.serverId }, name, { value: 'hijack', secret: true }),
        () => deleteVariable(db, tenantCtx, { serverId: f.serverId }, name),
      ]) {
        expect(await rejection(action)).toMatchObject({ code: 'server-not-found' });
      }
      const tenantServer = await makeServer(tenant.id);
      const resolved = await resolveVariables(db, box, tenant.id, {
        serverId: tenantServer.serverId,
        versionId: tenantServer.versionId,
      });
      expect(resolved[name]).toEqual({ value: 'tenant-value', secret: false, scope: 'org' });
      const mine = await resolveVariables(db, box, org.id, { serverId: f.serverId, versionId: f.versionId });
      expect(mine[name]).toEqual({ value: 'org-a-secret', secret: true, scope: 'server' });
      expect((await listAudit(db, tenant.id, { target: name })).events.map((e) => e.action)).toEqual([
        'variable.set',
      ]);
      await deleteVariable(db, ctx, {}, name);
    });
  });
});

describe('secret key loading', () => {
  const dirs: string[] = [];
  const dir = () => {
    const d = tempDir('pylee-secret-key');
    dirs.push(d);
    return d;
  };
  afterAll(() => {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('creates secret.key with mode 0600 on first use and returns the same key afterwards', () => {
    const dataDir = path.join(dir(), 'data');
    const lines: string[] = [];
    const logger = createLogger('info', { write: (line: string) => void lines.push(line) });

    const key = loadSecretKey({ secretKey: undefined, dataDir }, logger);
    const again = loadSecretKey({ secretKey: undefined, dataDir }, logger);

    const file = path.join(dataDir, 'secret.key');
    expect(key).toHaveLength(32);
    expect(again.equals(key)).toBe(true);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    expect(fs.readFileSync(file, 'utf8')).toBe(`${key.toString('hex')}\n`);
    expect(fs.readdirSync(dataDir)).toEqual(['secret.key']);
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ level: 30, path: file });
    expect(lines[0]).not.toContain(key.toString('hex'));
    expect(lines[0]).not.toContain(key.toString('base64'));
  });

  it('reads a key file without a trailing newline', () => {
    const dataDir = dir();
    const key = randomBytes(32);
    fs.writeFileSync(path.join(dataDir, 'secret.key'), key.toString('hex').toUpperCase(), { mode: 0o600 });

    expect(loadSecretKey({ secretKey: undefined, dataDir }).equals(key)).toBe(true);
  });

  it('refuses a key file other users can read, saying how to fix it', () => {
    const dataDir = dir();
    const file = path.join(dataDir, 'secret.key');
    fs.writeFileSync(file, `${randomBytes(32).toString('hex')}\n`);
    fs.chmodSync(file, 0o644);

    expect(() => loadSecretKey({ secretKey: undefined, dataDir })).toThrow(StartupError);
    expect(() => loadSecretKey({ secretKey: undefined, dataDir })).toThrow(`chmod 600 ${file}`);
  });

  it('refuses a malformed key file without quoting it', () => {
    const dataDir = dir();
    const file = path.join(dataDir, 'secret.key');
    const content = `${randomBytes(31).toString('hex')}\n`;
    fs.writeFileSync(file, content, { mode: 0o600 });

    let error: unknown;
    try {
      loadSecretKey({ secretKey: undefined, dataDir });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StartupError);
    expect((error as Error).message).toContain('64 hex digits');
    expect((error as Error).message).not.toContain(content.trim());
    expect(fs.readFileSync(file, 'utf8')).toBe(content);
  });

  it('prefers PYLEE_SECRET_KEY and creates no file', () => {
    const dataDir = dir();
    const secretKey = randomBytes(32);

    expect(loadSecretKey({ secretKey, dataDir })).toBe(secretKey);
    expect(fs.readdirSync(dataDir)).toEqual([]);
  });
});
