import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Context } from '#core/auth/principal.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { noScheduler } from '#core/deploy/scheduler.ts';
import { actOnDeployment } from '#core/deploy/actions.ts';
import { createDeployment } from '#core/deploy/create.ts';
import type { DeployDeps } from '#core/deploy/records.ts';
import { loggingPublisher } from '#core/deploy/wiring.ts';
import { AppError } from '#core/errors.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import { createServer } from '#core/registry/servers.ts';
import { createVersion } from '#core/registry/versions.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';
import { silentLogger } from '#test/helpers/stores.ts';

// One active rollout per server and environment, decided by the database: of concurrent deploys to
// one environment exactly one wins, on PGlite and on a real PostgreSQL (a pool of connections).

describe.each(DB_DRIVERS)('concurrent deploys on $name', (driver) => {
  let db: Db;
  let cleanup: (() => Promise<void>) | undefined;
  let deps: DeployDeps;
  let ctx: Context;

  beforeAll(async () => {
    const opened = await driver.open();
    db = opened.db;
    cleanup = opened.cleanup;
    await migrateDb(db);
    const { org } = await bootstrap(db, 'pyl_concurrency-test-token-0123456789');
    ctx = { principal: systemPrincipal(org) };
    deps = { db, publisher: loggingPublisher(silentLogger), scheduler: noScheduler };
    await createServer(db, ctx, { slug: 'race' });
    for (let i = 0; i < 8; i++)
      await createVersion(db, ctx, 'race', { version: `1.${i}.0`, status: 'stable' });
  });
  afterAll(async () => {
    await cleanup?.();
  });

  const canary = (version: string) => ({
    version,
    environment: 'staging',
    strategy: 'canary' as const,
    steps: [{ weight: 10, pause: { approval: true } }, { weight: 100 }],
  });

  it('eight deploys at once: exactly one wins, the others get 409 naming it', async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => createDeployment(deps, ctx, 'race', canary(`1.${i}.0`))),
    );
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    const winner = (won[0] as PromiseFulfilledResult<{ id: string }>).value;
    expect(lost).toHaveLength(7);
    for (const { reason } of lost) {
      expect(reason).toBeInstanceOf(AppError);
      expect((reason as AppError).code).toBe('rollout-active');
      expect((reason as AppError).message).toContain(winner.id);
    }
    const active = await db.query(
      `SELECT id FROM deployments WHERE status IN ('pending', 'verifying', 'progressing', 'paused')`,
    );
    expect(active).toEqual([{ id: winner.id }]);
    // The losers left nothing behind: no rows, no timeline, no audit events of theirs.
    expect(await db.query('SELECT count(*) AS n FROM deployments')).toEqual([{ n: 1 }]);
    expect(
      await db.query(`SELECT count(*) AS n FROM audit_events WHERE action = 'deployment.create'`),
    ).toEqual([{ n: 1 }]);
    await actOnDeployment(deps, ctx, 'race', winner.id, 'abort');
  });

  it('the unique index refuses a second active row even when the service is bypassed', async () => {
    const d = await createDeployment(deps, ctx, 'race', canary('1.1.0'));
    const [row] = await db.query<Record<string, unknown>>('SELECT * FROM deployments WHERE id = $1', [d.id]);
    await expect(
      db.query(
        `INSERT INTO deployments (id, org_id, server_id, version_id, version, environment_id, current_environment_id,
           strategy, kind, steps, status, policy, created_by)
         VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $5, 'immediate', 'deploy', '[]', 'pending', '{}', 'x')`,
        [row?.org_id, row?.server_id, row?.version_id, row?.version, row?.environment_id],
      ),
    ).rejects.toThrow(/deployments_one_active_idx|duplicate key/);
    await actOnDeployment(deps, ctx, 'race', d.id, 'abort');
  });

  it('concurrent actions on one rollout apply one after the other', async () => {
    const d = await createDeployment(deps, ctx, 'race', {
      ...canary('1.2.0'),
      steps: [
        { weight: 10, pause: { approval: true } },
        { weight: 20, pause: { approval: true } },
        { weight: 30, pause: { approval: true } },
        { weight: 100 },
      ],
    });
    const results = await Promise.allSettled([
      actOnDeployment(deps, ctx, 'race', d.id, 'promote'),
      actOnDeployment(deps, ctx, 'race', d.id, 'promote'),
      actOnDeployment(deps, ctx, 'race', d.id, 'abort'),
    ]);
    const [after] = await db.query<{ status: string; current_step: number }>(
      'SELECT status, current_step FROM deployments WHERE id = $1',
      [d.id],
    );
    const events = await db.query<{ action: string }>(
      'SELECT action FROM deployment_events WHERE deployment_id = $1 ORDER BY at, id',
      [d.id],
    );
    // Every accepted action is one timeline row; a promote after the abort is refused naming the state.
    const accepted = results.filter((r) => r.status === 'fulfilled').length;
    expect(events.length).toBe(2 + accepted);
    for (const r of results) {
      if (r.status === 'rejected') expect((r.reason as AppError).code).toBe('invalid-state');
    }
    expect(after?.status).toBe('aborted');
  });
});
