import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listAudit } from '#core/audit/log.ts';
import type { Context, Permission } from '#core/auth/principal.ts';
import { authenticate, createToken, getToken, revokeToken } from '#core/auth/tokens.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import {
  AppError,
  BadRequestError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
} from '#core/errors.ts';
import { bootstrap, createOrg, findOrg, systemPrincipal, type Org } from '#core/orgs.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';

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

const sha256 = (value: string) => createHash('sha256').update(value).digest('hex');
const uniqueSlug = (label: string) => `${label}-${randomBytes(4).toString('hex')}`;

describe.each(DB_DRIVERS)('tokens and orgs on $name', (driver) => {
  let db: Db;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    ({ db, cleanup } = await driver.open());
    await migrateDb(db);
  });

  afterAll(async () => {
    await cleanup?.();
  });

  /** The default org and a context acting as its admin (bootstrap is idempotent). */
  async function instanceAdmin(): Promise<{ org: Org; ctx: Context }> {
    const { org } = await bootstrap(db);
    return { org, ctx: { principal: systemPrincipal(org) } };
  }

  async function count(sql: string, params: unknown[] = []): Promise<number> {
    const [row] = await db.query<{ n: number }>(`SELECT count(*) AS n FROM ${sql}`, params);
    return row?.n ?? -1;
  }

  async function auditHead(orgId: string): Promise<number> {
    const [row] = await db.query<{ seq: number }>('SELECT seq FROM audit_heads WHERE org_id = $1', [orgId]);
    return row?.seq ?? 0;
  }

  describe('bootstrap', () => {
    // First on the fresh database: neither call finds org default.
    it('creates one default org and one generated token when two starts race', async () => {
      const results = await Promise.all([bootstrap(db), bootstrap(db)]);

      expect(results[0].org).toEqual(results[1].org);
      expect(await count("orgs WHERE slug = 'default'")).toBe(1);
      const generated = results.map((r) => r.generatedToken).filter((t) => t !== undefined);
      expect(generated).toHaveLength(1);
      expect(generated[0]).toMatch(/^pyl_/);
      expect(await authenticate(db, generated[0])).toMatchObject({
        orgSlug: 'default',
        permissions: ['admin'],
      });
    });

    it('returns a generated token only the first time', async () => {
      await bootstrap(db);

      const again = await bootstrap(db);

      expect(again.generatedToken).toBeUndefined();
      expect(again.org.slug).toBe('default');
    });

    it('adds a given bootstrap token once, however often it starts', async () => {
      const token = `pyl_bootstrap_${randomBytes(8).toString('hex')}`;

      const first = await bootstrap(db, token);
      const second = await bootstrap(db, token);

      expect(first.generatedToken).toBeUndefined();
      expect(second.org).toEqual(first.org);
      expect(await count('tokens WHERE hash = $1', [sha256(token)])).toBe(1);
      expect(await authenticate(db, token)).toMatchObject({
        orgSlug: 'default',
        tokenName: 'bootstrap',
        permissions: ['admin'],
      });
    });

    it('keeps a revoked bootstrap token revoked on a later start', async () => {
      const token = `pyl_bootstrap_${randomBytes(8).toString('hex')}`;
      await bootstrap(db, token);
      const { ctx } = await instanceAdmin();
      await revokeToken(db, ctx, (await authenticate(db, token)).tokenId as string);

      await bootstrap(db, token);

      expect(await rejection(() => authenticate(db, token))).toMatchObject({ code: 'revoked-token' });
      expect(await count('tokens WHERE hash = $1', [sha256(token)])).toBe(1);
    });
  });

  describe('creating and authenticating', () => {
    it('returns a pyl_ token and stores only its SHA-256 hash', async () => {
      const { org, ctx } = await instanceAdmin();

      const { token, view } = await createToken(db, ctx, { name: 'ci', permissions: ['write'] });

      expect(token).toMatch(/^pyl_[A-Za-z0-9_-]{43}$/);
      expect(view).toMatchObject({
        name: 'ci',
        prefix: token.slice(0, 12),
        permissions: ['write'],
        servers: null,
        expiresAt: null,
        revokedAt: null,
        active: true,
      });
      const [row] = await db.query<Record<string, unknown>>('SELECT * FROM tokens WHERE id = $1', [view.id]);
      expect(row?.hash).toBe(sha256(token));
      expect(Object.values(row ?? {}).map(String)).not.toContain(token);
      expect(JSON.stringify(row)).not.toContain(token.slice(12));
      // The audit trail names the token but holds neither it nor its hash.
      const [event] = (await listAudit(db, org.id, { target: view.id })).events;
      expect(event?.action).toBe('token.create');
      expect(JSON.stringify(event)).not.toContain(token.slice(12));
      expect(JSON.stringify(event)).not.toContain(sha256(token));
    });

    it('authenticates a token to its principal and records when it was used', async () => {
      const { org, ctx } = await instanceAdmin();
      const { token, view } = await createToken(db, ctx, {
        name: 'weather-deployer',
        permissions: ['deploy'],
        servers: ['weather', 'maps', 'weather'],
      });

      const principal = await authenticate(db, token);

      expect(principal).toEqual({
        orgId: org.id,
        orgSlug: 'default',
        tokenId: view.id,
        tokenName: 'weather-deployer',
        permissions: ['deploy'],
        servers: ['maps', 'weather'],
      });
      expect((await getToken(db, org.id, view.id)).lastUsedAt).not.toBeNull();
    });

    it('rejects a missing token', async () => {
      for (const token of [undefined, '']) {
        const error = await rejection(() => authenticate(db, token));
        expect(error).toBeInstanceOf(UnauthorizedError);
        expect(error.code).toBe('missing-token');
      }
    });

    it('rejects an unknown token without saying more', async () => {
      const error = await rejection(() => authenticate(db, `pyl_${randomBytes(32).toString('base64url')}`));

      expect(error).toBeInstanceOf(UnauthorizedError);
      expect(error.code).toBe('invalid-token');
      expect(error.message).toBe('the API token is not valid');
    });

    it('rejects a revoked token', async () => {
      const { ctx } = await instanceAdmin();
      const { token, view } = await createToken(db, ctx, { name: 'to-revoke', permissions: ['read'] });
      await revokeToken(db, ctx, view.id);

      const error = await rejection(() => authenticate(db, token));

      expect(error).toBeInstanceOf(UnauthorizedError);
      expect(error.code).toBe('revoked-token');
      expect(error.message).toContain(view.prefix);
    });

    it('rejects an expired token', async () => {
      const { ctx } = await instanceAdmin();
      const { token, view } = await createToken(db, ctx, {
        name: 'short-lived',
        permissions: ['read'],
        expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
      });
      await authenticate(db, token);
      await db.query("UPDATE tokens SET expires_at = now() - interval '1 second' WHERE id = $1", [view.id]);

      const error = await rejection(() => authenticate(db, token));

      expect(error).toBeInstanceOf(UnauthorizedError);
      expect(error.code).toBe('expired-token');
      expect((await getToken(db, ctx.principal.orgId, view.id)).active).toBe(false);
    });

    it('rejects an expiry in the past or not a time, writing nothing', async () => {
      const { org, ctx } = await instanceAdmin();
      const tokensBefore = await count('tokens');
      const headBefore = await auditHead(org.id);

      for (const expiresAt of [new Date(Date.now() - 1000).toISOString(), 'next tuesday']) {
        const error = await rejection(() =>
          createToken(db, ctx, { name: 'bad-expiry', permissions: ['read'], expiresAt }),
        );
        expect(error).toBeInstanceOf(BadRequestError);
        expect(error.message).toContain(expiresAt);
      }
      expect(await count('tokens')).toBe(tokensBefore);
      expect(await auditHead(org.id)).toBe(headBefore);
    });

    it('rejects a token without permissions, writing nothing', async () => {
      const { ctx } = await instanceAdmin();
      const tokensBefore = await count('tokens');

      const error = await rejection(() => createToken(db, ctx, { name: 'powerless', permissions: [] }));

      expect(error).toBeInstanceOf(BadRequestError);
      expect(error.message).toMatch(/at least one permission/);
      expect(await count('tokens')).toBe(tokensBefore);
    });

    it('normalises permissions: sorted, unique, admin standing alone', async () => {
      const { ctx } = await instanceAdmin();
      const cases: [Permission[], Permission[]][] = [
        [
          ['write', 'read'],
          ['read', 'write'],
        ],
        [
          ['deploy', 'read', 'deploy'],
          ['read', 'deploy'],
        ],
        [['read', 'admin', 'write'], ['admin']],
      ];

      for (const [given, stored] of cases) {
        const { token, view } = await createToken(db, ctx, { name: 'normalised', permissions: given });
        expect(view.permissions).toEqual(stored);
        expect((await authenticate(db, token)).permissions).toEqual(stored);
      }
    });
  });

  describe('revoking', () => {
    it('revokes once: a second revoke returns the token unchanged and records nothing', async () => {
      const { org, ctx } = await instanceAdmin();
      const { view } = await createToken(db, ctx, { name: 'revoke-twice', permissions: ['read'] });

      const first = await revokeToken(db, ctx, view.id);
      const headAfterFirst = await auditHead(org.id);
      const second = await revokeToken(db, ctx, view.id);

      expect(first.revokedAt).not.toBeNull();
      expect(first.active).toBe(false);
      expect(second).toEqual(first);
      expect(await auditHead(org.id)).toBe(headAfterFirst);
      const events = (await listAudit(db, org.id, { target: view.id })).events;
      expect(events.map((e) => e.action)).toEqual(['token.revoke', 'token.create']);
      expect(events[0]?.before).toMatchObject({ revokedAt: null });
      expect(events[0]?.after).toMatchObject({ revokedAt: first.revokedAt });
    });

    it("reports another org's token as not found and leaves it active", async () => {
      const { ctx } = await instanceAdmin();
      const other = await createOrg(db, ctx, { slug: uniqueSlug('other') });

      const error = await rejection(() => revokeToken(db, ctx, other.tokenView.id));

      expect(error).toBeInstanceOf(NotFoundError);
      expect(error.code).toBe('token-not-found');
      expect(await authenticate(db, other.token)).toMatchObject({ orgId: other.org.id });
    });

    it('reports an unknown token id as not found', async () => {
      const { ctx } = await instanceAdmin();

      expect(await rejection(() => revokeToken(db, ctx, randomUUID()))).toBeInstanceOf(NotFoundError);
    });
  });

  describe('creating orgs', () => {
    it('creates an org with a working admin token, recorded in both trails', async () => {
      const { org: defaultOrg, ctx } = await instanceAdmin();
      const slug = uniqueSlug('acme');

      const created = await createOrg(db, ctx, { slug, name: 'Acme Labs' });

      expect(created.org).toMatchObject({ slug, name: 'Acme Labs' });
      expect(await findOrg(db, slug)).toEqual(created.org);
      expect(await authenticate(db, created.token)).toMatchObject({
        orgId: created.org.id,
        orgSlug: slug,
        permissions: ['admin'],
      });
      expect((await listAudit(db, created.org.id, { action: 'org.create' })).events).toHaveLength(1);
      expect((await listAudit(db, defaultOrg.id, { target: created.org.id })).events).toHaveLength(1);
    });

    it('refuses an org created by an admin of an org other than default', async () => {
      const { ctx } = await instanceAdmin();
      const other = await createOrg(db, ctx, { slug: uniqueSlug('tenant') });
      const tenantAdmin: Context = { principal: await authenticate(db, other.token) };
      const slug = uniqueSlug('sneaky');

      const error = await rejection(() => createOrg(db, tenantAdmin, { slug }));

      expect(error).toBeInstanceOf(ForbiddenError);
      expect(error.code).toBe('not-instance-admin');
      expect(await findOrg(db, slug)).toBeUndefined();
    });

    it('refuses an org created by a default-org token without admin', async () => {
      const { ctx } = await instanceAdmin();
      const { token } = await createToken(db, ctx, { name: 'writer', permissions: ['write'] });
      const writer: Context = { principal: await authenticate(db, token) };

      const error = await rejection(() => createOrg(db, writer, { slug: uniqueSlug('nope') }));

      expect(error).toBeInstanceOf(ForbiddenError);
      expect(error.code).toBe('missing-permission');
    });

    it('refuses a duplicate slug, writing nothing', async () => {
      const { org: defaultOrg, ctx } = await instanceAdmin();
      const slug = uniqueSlug('taken');
      await createOrg(db, ctx, { slug });
      const orgsBefore = await count('orgs');
      const headBefore = await auditHead(defaultOrg.id);

      const error = await rejection(() => createOrg(db, ctx, { slug }));

      expect(error).toBeInstanceOf(ConflictError);
      expect(error.code).toBe('org-exists');
      expect(await count('orgs')).toBe(orgsBefore);
      expect(await auditHead(defaultOrg.id)).toBe(headBefore);
    });

    it('refuses a slug that is not lowercase letters, digits and dashes', async () => {
      const { ctx } = await instanceAdmin();
      const orgsBefore = await count('orgs');

      for (const slug of [
        'Acme',
        '-acme',
        'acme-',
        'a',
        'acme labs',
        "x'); DROP TABLE orgs; --",
        'a'.repeat(65),
      ]) {
        const error = await rejection(() => createOrg(db, ctx, { slug }));
        expect(error).toBeInstanceOf(BadRequestError);
        expect(error.code).toBe('invalid-slug');
      }
      expect(await count('orgs')).toBe(orgsBefore);
    });
  });
});
