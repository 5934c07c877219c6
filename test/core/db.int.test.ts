import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite, openPostgres, type Db } from '#core/db/client.ts';
import { migrateDb, readMigrations } from '#core/db/migrate.ts';
import { DB_DRIVERS, type DbDriver } from '#test/helpers/drivers.ts';
import { createTestDatabase } from '#test/helpers/postgres.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

interface Store {
  db: Db;
  /** The database's URL on PostgreSQL, for a second connection as another process would open. */
  url: string | undefined;
  /** Set by a test that closes `db` itself. */
  closed: boolean;
  cleanup(): Promise<void>;
}

/**
 * A fresh, unmigrated store. Opened here rather than with `driver.open()` because these tests
 * need the database URL (a second connection) and close the store themselves.
 */
async function openStore(driver: DbDriver): Promise<Store> {
  if (driver.name === 'pglite') {
    const dir = tempDir('pylee-pglite');
    const store: Store = {
      db: await openPglite(dir),
      url: undefined,
      closed: false,
      async cleanup() {
        if (!store.closed) await store.db.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
    return store;
  }
  const database = await createTestDatabase();
  const store: Store = {
    db: await openPostgres(database.url),
    url: database.url,
    closed: false,
    async cleanup() {
      if (!store.closed) await store.db.close();
      await database.drop();
    },
  };
  return store;
}

/** Migration files in a temp dir, numbered far above the real ones so both sets can coexist. */
function migrationsDir(files: Record<string, string>): string {
  const dir = tempDir('pylee-migrations');
  for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
  return dir;
}

async function tableExists(db: Db, name: string): Promise<boolean> {
  const [row] = await db.query<{ exists: boolean }>('SELECT to_regclass($1) IS NOT NULL AS exists', [name]);
  return row?.exists ?? false;
}

describe.each(DB_DRIVERS)('Postgres store on $name', (driver) => {
  let store: Store;
  let db: Db;
  const dirs: string[] = [];

  beforeAll(async () => {
    store = await openStore(driver);
    db = store.db;
  });

  afterAll(async () => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    await store?.cleanup();
  });

  describe('migrations', () => {
    /** The migrations in core/db/migrations, in order, as schema_migrations records them. */
    const shipped = async () =>
      (await readMigrations(path.join(import.meta.dirname, '../../core/db/migrations'))).map(
        ({ version, name }) => ({ version, name }),
      );
    // First on the fresh store: nothing is applied yet when both runs start.
    it('applies each migration exactly once when two runs start at the same time', async () => {
      // PGlite is one connection in one process; PostgreSQL gets a second pool, as a second process would open.
      const other = store.url ? await openPostgres(store.url) : db;
      try {
        const results = await Promise.all([migrateDb(db), migrateDb(other)]);

        const versions = (await shipped()).map((m) => m.version).join(',');
        expect(results.map((r) => r.join(',')).sort()).toEqual(['', versions]);
      } finally {
        if (other !== db) await other.close();
      }
      expect(await db.query('SELECT version, name FROM schema_migrations ORDER BY version')).toEqual(
        await shipped(),
      );
      expect(await tableExists(db, 'audit_events')).toBe(true);
    });

    it('applies nothing on a second run and records each migration once', async () => {
      await migrateDb(db);

      expect(await migrateDb(db)).toEqual([]);
      expect(await db.query('SELECT version, name FROM schema_migrations ORDER BY version')).toEqual(
        await shipped(),
      );
    });

    it('rolls back a whole run when one migration fails, recording none of it', async () => {
      await migrateDb(db);
      const dir = migrationsDir({
        '9001_probe_table.sql': 'CREATE TABLE migration_probe (id int);',
        '9002_broken.sql': 'CREATE TABLE migration_probe_2 (id int);\nTHIS IS NOT SQL;',
      });
      dirs.push(dir);

      await expect(migrateDb(db, dir)).rejects.toThrow(/syntax error/);

      expect(await tableExists(db, 'migration_probe')).toBe(false);
      expect(await tableExists(db, 'migration_probe_2')).toBe(false);
      expect(await db.query('SELECT version FROM schema_migrations WHERE version > 9000')).toEqual([]);
    });

    it('reads only NNNN_name.sql files, in version order', async () => {
      const dir = migrationsDir({
        '0010_later.sql': 'SELECT 10;',
        '0002_earlier.sql': 'SELECT 2;',
        'README.md': '# not a migration',
        '0003-dashed-name.sql': 'SELECT 3;',
        '0004_UpperCase.sql': 'SELECT 4;',
      });
      dirs.push(dir);

      expect(await readMigrations(dir)).toEqual([
        { version: 2, name: 'earlier', sql: 'SELECT 2;' },
        { version: 10, name: 'later', sql: 'SELECT 10;' },
      ]);
    });
  });

  describe('queries and transactions', () => {
    beforeAll(async () => {
      await migrateDb(db);
      await db.exec(`
        CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL UNIQUE);
        CREATE TABLE counters (n int8 NOT NULL);
      `);
    });

    it('commits a transaction when its function resolves and returns its value', async () => {
      const result = await db.transaction(async (tx) => {
        await tx.query('INSERT INTO notes (body) VALUES ($1)', ['committed-1']);
        await tx.query('INSERT INTO notes (body) VALUES ($1)', ['committed-2']);
        return 'done';
      });

      expect(result).toBe('done');
      expect(await db.query("SELECT body FROM notes WHERE body LIKE 'committed-%' ORDER BY body")).toEqual([
        { body: 'committed-1' },
        { body: 'committed-2' },
      ]);
    });

    it('rolls back everything a transaction wrote when its function throws', async () => {
      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO notes (body) VALUES ($1)', ['rolled-back']);
          await tx.exec('CREATE TABLE created_in_rolled_back_tx (id int)');
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');

      expect(await db.query("SELECT body FROM notes WHERE body = 'rolled-back'")).toEqual([]);
      expect(await tableExists(db, 'created_in_rolled_back_tx')).toBe(false);
    });

    it('rolls back earlier statements when a later statement fails, and stays usable', async () => {
      await db.query('INSERT INTO notes (body) VALUES ($1)', ['taken']);

      await expect(
        db.transaction(async (tx) => {
          await tx.query('INSERT INTO notes (body) VALUES ($1)', ['before-the-failure']);
          await tx.query('INSERT INTO notes (body) VALUES ($1)', ['taken']);
        }),
      ).rejects.toThrow(/unique/);

      expect(await db.query("SELECT body FROM notes WHERE body = 'before-the-failure'")).toEqual([]);
      // The connection that ran the failed transaction is usable again, inside and outside a transaction.
      await db.transaction((tx) => tx.query('INSERT INTO notes (body) VALUES ($1)', ['after-the-failure']));
      expect(await db.query("SELECT body FROM notes WHERE body = 'after-the-failure'")).toEqual([
        { body: 'after-the-failure' },
      ]);
    });

    it('returns int8 values such as count(*) as JS numbers', async () => {
      await db.query('INSERT INTO counters (n) VALUES ($1), ($2)', [1, 9_007_199_254_740_000]);

      const [count] = await db.query<{ count: unknown }>('SELECT count(*) AS count FROM counters');
      const rows = await db.query<{ n: unknown }>('SELECT n FROM counters ORDER BY n');
      const [inTx] = await db.transaction((tx) =>
        tx.query<{ total: unknown }>('SELECT sum(n) AS total FROM counters'),
      );

      expect(count).toEqual({ count: 2 });
      expect(rows).toEqual([{ n: 1 }, { n: 9_007_199_254_740_000 }]);
      expect(typeof inTx?.total).toBe('number');
    });

    it('binds parameters as data rather than splicing them into the SQL', async () => {
      const hostile = "'); DROP TABLE notes; --";

      await db.query('INSERT INTO notes (body) VALUES ($1)', [hostile]);
      const [echo] = await db.query<{ value: string }>('SELECT $1::text AS value', [`$1 ${hostile}`]);

      expect(await db.query('SELECT body FROM notes WHERE body = $1', [hostile])).toEqual([
        { body: hostile },
      ]);
      expect(echo?.value).toBe(`$1 ${hostile}`);
      expect(await tableExists(db, 'notes')).toBe(true);
    });

    it('runs several statements in one exec and rejects a query with a clear error', async () => {
      await db.exec(`
        CREATE TABLE exec_probe (id int);
        INSERT INTO exec_probe VALUES (1), (2);
      `);

      expect(await db.query('SELECT id FROM exec_probe ORDER BY id')).toEqual([{ id: 1 }, { id: 2 }]);
      await expect(db.query('SELECT * FROM no_such_table')).rejects.toThrow(/no_such_table/);
    });
  });

  describe('lifecycle', () => {
    // Last: it closes the store.
    it('answers ping while open and rejects ping and queries after close', async () => {
      await expect(db.ping()).resolves.toBeUndefined();

      await db.close();
      store.closed = true;

      await expect(db.ping()).rejects.toThrow();
      await expect(db.query('SELECT 1')).rejects.toThrow();
    });
  });
});

describe('openPostgres', () => {
  it('rejects when the server does not answer', async () => {
    await expect(openPostgres('postgres://pylee:pylee@127.0.0.1:1/postgres')).rejects.toThrow();
  });
});
