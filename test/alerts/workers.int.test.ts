import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { startWorkers, type Workers } from '#alerts/workers.ts';
import { createToken } from '#core/auth/tokens.ts';
import { JOBS } from '#core/queue/queues.ts';
import { settledUntil, type SettleResult } from '#core/release-health/rollups.ts';
import { bootstrap, systemPrincipal } from '#core/orgs.ts';
import type { ChainReport } from '#core/audit/log.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
const running: Workers[] = [];

beforeAll(async () => {
  stores = await openTestStores();
  const { org } = await bootstrap(stores.db);
  await createToken(stores.db, { principal: systemPrincipal(org) }, { name: 'ci', permissions: ['read'] });
});

afterAll(async () => {
  for (const w of running) await w.close();
  await stores?.close();
});

/** Waits for the next `name` job (audit-chain-check by default) to finish after `since` and returns its result. */
async function nextResult<T = Record<string, ChainReport>>(
  workers: Workers,
  since: number,
  name: string = JOBS.auditChainCheck,
): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const done: Job[] = await workers.queues.maintenance.getCompleted(0, 20);
    const job = done.filter((j) => j.name === name && (j.finishedOn ?? 0) > since).at(0);
    if (job) return job.returnvalue as T;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no ${name} job completed`);
}

describe('maintenance workers', () => {
  it('check the audit chain on a schedule and report tampering', async () => {
    const workers = await startWorkers({
      db: stores.db,
      redis: stores.redis,
      logger: silentLogger,
      auditCheckEveryMs: 300,
    });
    running.push(workers);
    const first = await nextResult(workers, 0);
    expect(first.default).toMatchObject({ ok: true, firstBad: null });
    expect(first.default?.checked).toBe(3);

    await stores.db.exec(`ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;
      UPDATE audit_events SET actor_name = 'someone-else' WHERE seq = 2;
      ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update;`);
    const after = await nextResult(workers, Date.now());
    expect(after.default).toMatchObject({ ok: false, firstBad: { seq: 2 } });
  });

  it('keeps one job scheduler however many alerts processes start', async () => {
    const second = await startWorkers({
      db: stores.db,
      redis: stores.redis,
      logger: silentLogger,
      auditCheckEveryMs: 300,
    });
    running.push(second);
    const schedulers = await second.queues.maintenance.getJobSchedulers();
    expect(schedulers.map((s) => s.key).sort()).toEqual([JOBS.auditChainCheck, JOBS.retentionApply].sort());
  });

  it('settle sessions into the release-health rollups, one process at a time', async () => {
    const hour = 3_600_000;
    const row = { org_id: 'o', server: 's', environment: 'production', version: '1.0.0', session_id: 'old' };
    await stores.warehouse.client.insert({
      table: 'session_events',
      values: [
        {
          ...row,
          time: new Date(Date.now() - 3 * hour).toISOString(),
          event: 'start',
          reason: '',
          client_key: 'k',
        },
        {
          ...row,
          time: new Date(Date.now() - 2 * hour).toISOString(),
          event: 'end',
          reason: 'delete',
          client_key: 'k',
        },
      ],
      format: 'JSONEachRow',
      clickhouse_settings: { date_time_input_format: 'best_effort' },
    });
    // Workers without a warehouse take no settle jobs, but would fail them: stop the earlier ones.
    for (const w of running.splice(0)) await w.close();
    // Another process holds the lock: this one skips its turn.
    await stores.redis.client.set('pylee:release-health:settle', 'other', 'PX', 60_000);
    const workers = await startWorkers({
      db: stores.db,
      redis: stores.redis,
      logger: silentLogger,
      warehouse: stores.warehouse,
      auditCheckEveryMs: 3_600_000,
      sessionRollupEveryMs: 300,
    });
    running.push(workers);
    expect(await nextResult(workers, 0, JOBS.sessionRollup)).toEqual({ skipped: true });
    expect(await settledUntil(stores.warehouse)).toBe(0);
    await stores.redis.client.del('pylee:release-health:settle');
    const settled = await nextResult<SettleResult>(workers, Date.now(), JOBS.sessionRollup);
    expect(settled.settledUntil).toBeGreaterThan(Date.now() - 2 * hour);
    const result = await stores.warehouse.client.query({
      query: `SELECT version, status, sum(sessions) AS n FROM session_rollups WHERE server = 's' GROUP BY version, status`,
      format: 'JSONEachRow',
    });
    expect(await result.json()).toEqual([{ version: '1.0.0', status: 'healthy', n: 1 }]);
  });
});
