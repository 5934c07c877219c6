import fs from 'node:fs';
import type { Db } from '#core/db/client.ts';
import { openPglite } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { createLogger } from '#core/logger.ts';
import { openRedis, type RedisStore } from '#core/queue/redis.ts';
import type { Stores } from '#core/stores.ts';
import { openWarehouse } from '#core/warehouse/client.ts';
import { migrateWarehouse } from '#core/warehouse/migrate.ts';
import { tempDir } from './temp-dir.ts';

export const silentLogger = createLogger('silent');

/**
 * Real embedded stores in a temp dir: PGlite (or the given Db), chDB and a redis-server child.
 * chDB allows one data dir per process, so call this once per test file.
 */
export async function openTestStores(options: { db?: Db } = {}): Promise<Stores & { dir: string }> {
  const dir = tempDir('pylee-stores');
  const redis: RedisStore = await openRedis({ dataDir: dir, redisUrl: undefined }, silentLogger);
  const db = options.db ?? (await openPglite(`${dir}/postgres`));
  const warehouse = await openWarehouse({ dataDir: dir });
  await migrateDb(db);
  await migrateWarehouse(warehouse);
  return {
    dir,
    db,
    warehouse,
    redis,
    async close() {
      await warehouse.close();
      if (!options.db) await db.close();
      await redis.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
