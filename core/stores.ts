import type { Config } from './config.ts';
import { lockDataDir, type DataDirLock } from './data-dir.ts';
import { openDb, type Db } from './db/client.ts';
import { migrateDb } from './db/migrate.ts';
import type { Logger } from './logger.ts';
import { openRedis, type RedisStore } from './queue/redis.ts';
import { openWarehouse, type Warehouse } from './warehouse/client.ts';
import { migrateWarehouse } from './warehouse/migrate.ts';
import { applyRetention } from './warehouse/telemetry-queries.ts';

/** The three planes' stores, opened and migrated. Roles receive this and never open stores themselves. */
export interface Stores {
  db: Db;
  warehouse: Warehouse;
  redis: RedisStore;
  close(): Promise<void>;
}

export type StoreName = 'postgres' | 'clickhouse' | 'redis';

export interface StoreHealth {
  ok: boolean;
  driver: string;
  error?: string;
}

export interface Readiness {
  ok: boolean;
  stores: Record<StoreName, StoreHealth>;
}

const usesEmbedded = (config: Config) => !config.databaseUrl || !config.clickhouseUrl || !config.redisUrl;

/** Opens every store (embedded ones in the data dir), applies migrations, and closes what it opened on failure. */
export async function openStores(config: Config, logger: Logger): Promise<Stores> {
  const opened: { close(): Promise<void> | void }[] = [];
  const closeAll = async () => {
    for (const store of opened.reverse()) await Promise.resolve(store.close()).catch(() => {});
  };
  try {
    let locked = false;
    if (usesEmbedded(config)) {
      const lock: DataDirLock = lockDataDir(config.dataDir);
      opened.push({ close: () => lock.release() });
      locked = true;
    }
    const redis = await openRedis(config, logger.child({ store: 'redis' }), { replaceOrphan: locked });
    opened.push(redis);
    const db = await openDb(config);
    opened.push(db);
    const warehouse = await openWarehouse(config);
    opened.push(warehouse);
    const [pgApplied, chApplied] = [await migrateDb(db), await migrateWarehouse(warehouse)];
    await applyRetention(warehouse, config.retention);
    logger.info(
      {
        postgres: db.driver,
        clickhouse: warehouse.driver,
        redis: redis.driver,
        migrations: { postgres: pgApplied, clickhouse: chApplied },
      },
      'stores ready',
    );
    return { db, warehouse, redis, close: closeAll };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

const CHECK_TIMEOUT_MS = 2000;

async function check(driver: string, ping: () => Promise<void>): Promise<StoreHealth> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      ping(),
      new Promise(
        (_, reject) =>
          (timer = setTimeout(() => reject(new Error('no answer within 2 s')), CHECK_TIMEOUT_MS)),
      ),
    ]);
    return { ok: true, driver };
  } catch (error) {
    return { ok: false, driver, error: (error as Error).message || String(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** Pings each store; ready only when all answer. */
export async function checkReadiness(stores: Pick<Stores, 'db' | 'warehouse' | 'redis'>): Promise<Readiness> {
  const [postgres, clickhouse, redis] = await Promise.all([
    check(stores.db.driver, () => stores.db.ping()),
    check(stores.warehouse.driver, () => stores.warehouse.ping()),
    check(stores.redis.driver, () => stores.redis.ping()),
  ]);
  return { ok: postgres.ok && clickhouse.ok && redis.ok, stores: { postgres, clickhouse, redis } };
}
