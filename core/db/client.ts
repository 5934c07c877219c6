import fs from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { timed } from '../telemetry/metrics.ts';

/** Anything SQL can be sent to: the database itself or an open transaction. */
export interface Queryable {
  /** One statement with `$1`-style typed parameters. */
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<T[]>;
  /** Several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
}

/** The control-plane store. The same Postgres SQL runs on both drivers. */
export interface Db extends Queryable {
  readonly driver: 'pglite' | 'postgres';
  /** Runs `fn` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// int8 (count(*), sequences) as a JS number on both drivers; ids and counters here stay far below 2^53.
const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** Opens PostgreSQL when `databaseUrl` is set, else PGlite in `<dataDir>/postgres`. */
export async function openDb(options: { databaseUrl?: string | undefined; dataDir: string }): Promise<Db> {
  if (options.databaseUrl) return openPostgres(options.databaseUrl);
  const dir = path.join(options.dataDir, 'postgres');
  await fs.mkdir(dir, { recursive: true });
  return openPglite(dir);
}

export async function openPglite(dir: string | undefined): Promise<Db> {
  const db = await PGlite.create({
    dataDir: dir,
    parsers: { [INT8_OID]: (v: string) => Number(v), [NUMERIC_OID]: (v: string) => Number(v) },
  });
  // PGlite is one connection: transactions queue behind each other, as they must.
  const wrap = (q: Pick<PGlite, 'query' | 'exec'>): Queryable => ({
    query: <T>(sql: string, params?: readonly unknown[]) =>
      timed('postgres', 'query', async () => (await q.query<T>(sql, params as unknown[])).rows),
    exec: (sql) => timed('postgres', 'exec', async () => void (await q.exec(sql))),
  });
  return {
    driver: 'pglite',
    ...wrap(db),
    transaction: (fn) => timed('postgres', 'transaction', () => db.transaction((tx) => fn(wrap(tx)))),
    ping: async () => void (await db.query('SELECT 1')),
    close: () => db.close(),
  };
}

export async function openPostgres(url: string): Promise<Db> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 5_000,
    types: {
      getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
        oid === INT8_OID || oid === NUMERIC_OID
          ? (v: string) => Number(v)
          : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
    },
  });
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => {});
  const wrap = (q: pg.Pool | pg.PoolClient): Queryable => ({
    query: <T>(sql: string, params?: readonly unknown[]) =>
      timed('postgres', 'query', async () => (await q.query(sql, params as unknown[])).rows as T[]),
    exec: (sql) => timed('postgres', 'exec', async () => void (await q.query(sql))),
  });
  const db: Db = {
    driver: 'postgres',
    ...wrap(pool),
    transaction: (fn) =>
      timed('postgres', 'transaction', async () => {
        const client = await pool.connect();
        let result: Awaited<ReturnType<typeof fn>>;
        try {
          await client.query('BEGIN');
          result = await fn(wrap(client));
          await client.query('COMMIT');
        } catch (error) {
          // A client whose ROLLBACK failed is in an unknown state: discard it rather than pool it.
          const broken = await client.query('ROLLBACK').then(
            () => false,
            () => true,
          );
          client.release(broken);
          throw error;
        }
        client.release();
        return result;
      }),
    ping: async () => void (await pool.query('SELECT 1')),
    close: () => pool.end(),
  };
  try {
    await db.ping();
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }
  return db;
}
