import fs from 'node:fs';
import { openPglite, openPostgres, type Db } from '#core/db/client.ts';
import { createTestDatabase, POSTGRES_ADMIN_URL } from './postgres.ts';
import { tempDir } from './temp-dir.ts';

export interface DbDriver {
  name: 'pglite' | 'postgres';
  open(): Promise<{ db: Db; cleanup(): Promise<void> }>;
}

const pglite: DbDriver = {
  name: 'pglite',
  async open() {
    const dir = tempDir('pylee-pglite');
    const db = await openPglite(dir);
    return {
      db,
      async cleanup() {
        await db.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

const postgres: DbDriver = {
  name: 'postgres',
  async open() {
    const database = await createTestDatabase();
    const db = await openPostgres(database.url);
    return {
      db,
      async cleanup() {
        await db.close();
        await database.drop();
      },
    };
  },
};

/**
 * The Postgres drivers reachable here: PGlite always, a real PostgreSQL when
 * `PYLEE_TEST_DATABASE_URL` is set (global setup fails the run if it is set but unreachable).
 */
export const DB_DRIVERS: DbDriver[] = POSTGRES_ADMIN_URL ? [pglite, postgres] : [pglite];
