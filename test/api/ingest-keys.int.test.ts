import type { InjectOptions } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IngestKeyVerifier } from '#core/auth/ingest-keys.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { AppError } from '#core/errors.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { openTestStores } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;

let stores: Stores;
beforeAll(async () => {
  stores = await openTestStores();
});
afterAll(async () => {
  await stores?.close();
});

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof AppError)) throw new Error(`expected an AppError, got ${String(error)}`);
  return error;
}

describe.each(DB_DRIVERS)('ingest keys on $name', (driver) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  let api: TestApi;
  const call = (options: InjectOptions) => api.app.inject(options);
  const admin = bearer(BOOTSTRAP_TOKEN);

  beforeAll(async () => {
    ({ db, cleanup } = await driver.open());
    await migrateDb(db);
    api = await buildTestApi({ ...stores, db });
    for (const slug of ['weather', 'search']) {
      await call({ method: 'POST', url: '/api/v1/servers', headers: admin, payload: { slug } });
    }
  });
  afterAll(async () => {
    await api?.app.close();
    await cleanup?.();
  });

  it('creates a key shown once, stored as a hash, that the collector accepts with its org and binding', async () => {
    const res = await call({
      method: 'POST',
      url: '/api/v1/ingest-keys',
      headers: admin,
      payload: { name: 'weather prod', server: 'weather' },
    });
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(created.key).toMatch(/^pyli_[A-Za-z0-9_-]{43}$/);
    expect(created).toMatchObject({ name: 'weather prod', server: 'weather', active: true });

    const rows = await db.query('SELECT * FROM ingest_keys WHERE id = $1', [created.id]);
    expect(JSON.stringify(rows)).not.toContain(created.key);
    const list = await call({ method: 'GET', url: '/api/v1/ingest-keys', headers: admin });
    expect(JSON.stringify(list.json())).not.toContain(created.key);
    expect(list.json().keys.map((k: { id: string }) => k.id)).toContain(created.id);

    const identity = await new IngestKeyVerifier(db).verify(created.key);
    expect(identity).toEqual({ orgId: api.org.id, keyId: created.id, server: 'weather' });
    const audit = await call({
      method: 'GET',
      url: '/api/v1/audit?action=ingest-key.create',
      headers: admin,
    });
    expect(JSON.stringify(audit.json())).not.toContain(created.key);
    expect(audit.json().events[0]).toMatchObject({ target: { id: created.id } });
  });

  it('refuses a missing, unknown or revoked key with 401, and revoking is final and idempotent', async () => {
    const verifier = new IngestKeyVerifier(db);
    expect((await rejection(verifier.verify(undefined))).code).toBe('missing-ingest-key');
    expect((await rejection(verifier.verify('pyli_nope'))).status).toBe(401);

    const { id, key } = (
      await call({
        method: 'POST',
        url: '/api/v1/ingest-keys',
        headers: admin,
        payload: { name: 'short-lived' },
      })
    ).json();
    expect((await verifier.verify(key)).server).toBeNull();
    const revoked = await call({ method: 'DELETE', url: `/api/v1/ingest-keys/${id}`, headers: admin });
    expect(revoked.json()).toMatchObject({ active: false });
    const again = await call({ method: 'DELETE', url: `/api/v1/ingest-keys/${id}`, headers: admin });
    expect(again.json().revokedAt).toBe(revoked.json().revokedAt);
    // A fresh verifier has no cached answer: the revocation is seen at once.
    expect((await rejection(new IngestKeyVerifier(db).verify(key))).code).toBe('invalid-ingest-key');
    const listed = await call({ method: 'GET', url: '/api/v1/ingest-keys', headers: admin });
    expect(listed.json().keys.map((k: { id: string }) => k.id)).not.toContain(id);
  });

  it('binds only to a registered server, and a server-limited token only to its own servers', async () => {
    const unknown = await call({
      method: 'POST',
      url: '/api/v1/ingest-keys',
      headers: admin,
      payload: { name: 'x', server: 'nowhere' },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toMatchObject({ code: 'server-not-found' });

    const limited = bearer(await api.token(['write'], { servers: ['weather'] }));
    const unbound = await call({
      method: 'POST',
      url: '/api/v1/ingest-keys',
      headers: limited,
      payload: { name: 'x' },
    });
    expect(unbound.statusCode).toBe(404);
    const other = await call({
      method: 'POST',
      url: '/api/v1/ingest-keys',
      headers: limited,
      payload: { name: 'x', server: 'search' },
    });
    expect(other.statusCode).toBe(404);
    const own = await call({
      method: 'POST',
      url: '/api/v1/ingest-keys',
      headers: limited,
      payload: { name: 'x', server: 'weather' },
    });
    expect(own.statusCode).toBe(201);
    const visible = await call({ method: 'GET', url: '/api/v1/ingest-keys', headers: limited });
    expect(visible.json().keys.every((k: { server: string }) => k.server === 'weather')).toBe(true);
  });

  it("hides another org's keys (404) and never lets them be revoked", async () => {
    const { id } = (
      await call({ method: 'POST', url: '/api/v1/ingest-keys', headers: admin, payload: { name: 'mine' } })
    ).json();
    const otherOrg = await call({
      method: 'POST',
      url: '/api/v1/orgs',
      headers: admin,
      payload: { slug: `other-${driver.name}` },
    });
    const stranger = bearer(otherOrg.json().token);
    const revoke = await call({ method: 'DELETE', url: `/api/v1/ingest-keys/${id}`, headers: stranger });
    expect(revoke.statusCode).toBe(404);
    expect(
      (await call({ method: 'GET', url: '/api/v1/ingest-keys', headers: stranger })).json().keys,
    ).toEqual([]);
    const still = await db.query<{ revoked_at: Date | null }>(
      'SELECT revoked_at FROM ingest_keys WHERE id = $1',
      [id],
    );
    expect(still[0]?.revoked_at).toBeNull();
  });
});
