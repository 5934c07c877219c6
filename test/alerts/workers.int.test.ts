import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job } from 'bullmq';
import { startWorkers, type Workers } from '#alerts/workers.ts';
import { createToken } from '#core/auth/tokens.ts';
import { JOBS } from '#core/queue/queues.ts';
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

/** Waits for the next audit-chain-check job to finish after `since` and returns its result. */
async function nextResult(workers: Workers, since: number): Promise<Record<string, ChainReport>> {
  for (let i = 0; i < 100; i++) {
    const done: Job[] = await workers.queues.maintenance.getCompleted(0, 20);
    const job = done.filter((j) => j.name === JOBS.auditChainCheck && (j.finishedOn ?? 0) > since).at(0);
    if (job) return job.returnvalue as Record<string, ChainReport>;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('no audit-chain-check job completed');
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
    expect(schedulers.map((s) => s.key)).toEqual([JOBS.auditChainCheck]);
  });
});
