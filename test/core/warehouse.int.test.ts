import { randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '#core/logger.ts';
import { AccessLogWriter, queryAccessLog, type AccessLogRow } from '#core/warehouse/access-log.ts';
import { openWarehouse, type Warehouse } from '#core/warehouse/client.ts';
import { readMigrations } from '#core/db/migrate.ts';
import { migrateWarehouse, splitStatements } from '#core/warehouse/migrate.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

interface WarehouseDriver {
  name: 'chdb' | 'clickhouse';
  /** A warehouse with nothing migrated yet, and how to remove it. */
  open(): Promise<{ warehouse: Warehouse; cleanup(): Promise<void> }>;
}

// chDB binds one data directory per process: this file opens it once, in the chdb block's beforeAll.
const chdb: WarehouseDriver = {
  name: 'chdb',
  async open() {
    const dir = tempDir('pylee-chdb');
    const warehouse = await openWarehouse({ dataDir: dir });
    return {
      warehouse,
      async cleanup() {
        await warehouse.close();
        fs.rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

/** A database of its own on the ClickHouse server, so runs neither see nor disturb each other. */
function clickhouseServer(url: string): WarehouseDriver {
  return {
    name: 'clickhouse',
    async open() {
      const database = `pylee_test_${randomBytes(6).toString('hex')}`;
      const admin = createClient({ url });
      await admin.command({ query: `CREATE DATABASE ${database}` });
      const dbUrl = new URL(url);
      dbUrl.pathname = `/${database}`;
      const dir = tempDir('pylee-clickhouse');
      const warehouse = await openWarehouse({ clickhouseUrl: dbUrl.toString(), dataDir: dir });
      return {
        warehouse,
        async cleanup() {
          await warehouse.close();
          await admin.command({ query: `DROP DATABASE IF EXISTS ${database}` });
          await admin.close();
          fs.rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

const CLICKHOUSE_URL = process.env.PYLEE_CLICKHOUSE_URL;
const WAREHOUSE_DRIVERS: WarehouseDriver[] = CLICKHOUSE_URL
  ? [chdb, clickhouseServer(CLICKHOUSE_URL)]
  : [chdb];

/** Log lines a logger wrote, parsed, so tests can see the writer's warnings. */
function capturingLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('warn', { write: (line: string) => void lines.push(JSON.parse(line)) });
  return { logger, lines };
}

/** Writers in tests never flush on their own: huge interval and batch size, unless a test says otherwise. */
const MANUAL = { flushIntervalMs: 3_600_000, batchSize: 1_000_000 };

const BASE_TIME = Date.now() - 60_000;

function row(orgId: string, i: number, overrides: Partial<AccessLogRow> = {}): AccessLogRow {
  return {
    org_id: orgId,
    time: new Date(BASE_TIME + i * 1000).toISOString(),
    request_id: `req-${i}`,
    role: 'api',
    method: 'GET',
    route: '/api/v1/servers/:server',
    path: `/api/v1/servers/weather-${i}`,
    status: 200,
    duration_ms: 1.5 + i,
    token_id: 'token-a',
    client_address: '10.0.0.1',
    user_agent: 'pylee-cli/0.1',
    ...overrides,
  };
}

describe('splitStatements', () => {
  it('splits statements that end a line with a semicolon and drops comment lines', () => {
    const sql = [
      '-- first: a table',
      'CREATE TABLE a (',
      '  x UInt8',
      ') ENGINE = Memory;',
      '',
      '-- second: another one',
      '   -- indented comment',
      'CREATE TABLE b (y UInt8) ENGINE = Memory;   ',
      '',
    ].join('\n');

    expect(splitStatements(sql)).toEqual([
      'CREATE TABLE a (\n  x UInt8\n) ENGINE = Memory',
      'CREATE TABLE b (y UInt8) ENGINE = Memory',
    ]);
  });

  it('keeps a last statement without a semicolon and returns nothing for comments only', () => {
    expect(splitStatements('SELECT 1;\nSELECT 2')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(splitStatements('-- nothing to run\n\n-- at all;\n')).toEqual([]);
    expect(splitStatements('')).toEqual([]);
  });

  it('splits the access_log migration into one statement', async () => {
    const sql = fs.readFileSync(
      path.join(import.meta.dirname, '../../core/warehouse/migrations/0001_access_log.sql'),
      'utf8',
    );

    const statements = splitStatements(sql);

    expect(statements).toHaveLength(1);
    expect(statements[0]).toMatch(/^CREATE TABLE IF NOT EXISTS access_log \(/);
  });
});

describe('openWarehouse', () => {
  it('rejects when the ClickHouse server does not answer', async () => {
    const dir = tempDir('pylee-unreachable');
    try {
      await expect(openWarehouse({ clickhouseUrl: 'http://127.0.0.1:1', dataDir: dir })).rejects.toThrow();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe.each(WAREHOUSE_DRIVERS)('warehouse on $name', (driver) => {
  let warehouse: Warehouse;
  let cleanup: () => Promise<void>;
  let firstMigration: number[];
  const dirs: string[] = [];

  beforeAll(async () => {
    ({ warehouse, cleanup } = await driver.open());
    firstMigration = await migrateWarehouse(warehouse);
  });

  afterAll(async () => {
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
    await cleanup?.();
  });

  async function select<T>(query: string, params: Record<string, unknown> = {}): Promise<T[]> {
    const result = await warehouse.client.query({ query, query_params: params, format: 'JSONEachRow' });
    return result.json<T>();
  }

  function migrationsDir(files: Record<string, string>): string {
    const dir = tempDir('pylee-ch-migrations');
    dirs.push(dir);
    for (const [name, sql] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), sql);
    return dir;
  }

  describe('migrations', () => {
    /** The migrations in core/warehouse/migrations, in order. */
    const shipped = async () =>
      (await readMigrations(path.join(import.meta.dirname, '../../core/warehouse/migrations'))).map(
        ({ version, name }) => ({ version, name }),
      );
    it('applies the migrations on a new warehouse and records them', async () => {
      const files = await shipped();
      expect(files.map((m) => m.name).slice(0, 3)).toEqual(['access_log', 'requests', 'metric_points']);
      expect(firstMigration).toEqual(files.map((m) => m.version));
      expect(await select('SELECT version, name FROM schema_migrations FINAL ORDER BY version')).toEqual(
        files,
      );
    });

    it('applies nothing on a second run', async () => {
      expect(await migrateWarehouse(warehouse)).toEqual([]);
      expect(await select('SELECT version FROM schema_migrations FINAL ORDER BY version')).toEqual(
        (await shipped()).map(({ version }) => ({ version })),
      );
    });

    it('runs every statement of a migration file, skipping its comments', async () => {
      const dir = migrationsDir({
        '9001_two_tables.sql': [
          '-- two statements in one file; a comment line ends with a semicolon here;',
          'CREATE TABLE IF NOT EXISTS probe_one (x UInt8) ENGINE = MergeTree ORDER BY x;',
          '',
          '-- the second',
          'CREATE TABLE IF NOT EXISTS probe_two (y String) ENGINE = MergeTree ORDER BY y;',
        ].join('\n'),
      });

      expect(await migrateWarehouse(warehouse, dir)).toEqual([9001]);
      expect(await migrateWarehouse(warehouse, dir)).toEqual([]);

      const tables = await select<{ name: string }>(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE 'probe_%' ORDER BY name",
      );
      expect(tables.map((t) => t.name)).toEqual(['probe_one', 'probe_two']);
    });

    it('does not record a migration whose statement fails, so the next start retries it', async () => {
      const dir = migrationsDir({
        '9002_broken.sql': 'CREATE TABLE IF NOT EXISTS broken (x UInt8) ENGINE = Nope;',
      });

      await expect(migrateWarehouse(warehouse, dir)).rejects.toThrow();

      expect(await select('SELECT version FROM schema_migrations FINAL WHERE version = 9002')).toEqual([]);
    });

    it('sorts access_log by org first, so one org reads only its own rows', async () => {
      const [table] = await select<{ sorting_key: string; partition_key: string }>(
        `SELECT sorting_key, partition_key FROM system.tables
         WHERE database = currentDatabase() AND name = 'access_log'`,
      );

      expect(table?.sorting_key.split(',').map((k) => k.trim())).toEqual(['org_id', 'time']);
      expect(table?.partition_key).toBe('toYYYYMM(time)');
    });
  });

  describe('query parameters', () => {
    it('binds a quote-laden value as data', async () => {
      const hostile = `it's a "quote" \\ {x:String} '); DROP TABLE access_log; --`;

      expect(await select('SELECT {x:String} AS x', { x: hostile })).toEqual([{ x: hostile }]);
      expect(await queryAccessLog(warehouse, hostile)).toEqual([]);
      expect(
        await select(
          "SELECT name FROM system.tables WHERE database = currentDatabase() AND name = 'access_log'",
        ),
      ).toEqual([{ name: 'access_log' }]);
    });
  });

  describe('access log', () => {
    it('buffers rows until flush, then stores them and lists an org newest first', async () => {
      const org = randomUUID();
      const writer = new AccessLogWriter(warehouse, capturingLogger().logger, MANUAL);
      for (const i of [0, 2, 1]) writer.write(row(org, i));

      expect(await queryAccessLog(warehouse, org)).toEqual([]);
      await writer.flush();
      const rows = await queryAccessLog(warehouse, org);
      await writer.close();

      expect(rows.map((r) => r.requestId)).toEqual(['req-2', 'req-1', 'req-0']);
      expect(rows[0]).toEqual({
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3,6}Z$/),
        requestId: 'req-2',
        method: 'GET',
        route: '/api/v1/servers/:server',
        path: '/api/v1/servers/weather-2',
        status: 200,
        durationMs: 3.5,
        tokenId: 'token-a',
        clientAddress: '10.0.0.1',
        userAgent: 'pylee-cli/0.1',
      });
      expect(new Date(rows[0]?.time ?? '').toISOString()).toBe(row(org, 2).time);
    });

    it('filters by org, token and status and honours the limit', async () => {
      const org = randomUUID();
      const otherOrg = randomUUID();
      const writer = new AccessLogWriter(warehouse, capturingLogger().logger, MANUAL);
      writer.write(row(org, 0, { status: 200, token_id: 'token-a' }));
      writer.write(row(org, 1, { status: 404, token_id: 'token-b' }));
      writer.write(row(org, 2, { status: 200, token_id: 'token-b' }));
      writer.write(row(org, 3, { status: 500, token_id: 'token-a' }));
      writer.write(row(otherOrg, 4, { status: 200, token_id: 'token-a' }));
      await writer.close();

      const ids = async (filter: Parameters<typeof queryAccessLog>[2] = {}, orgId = org) =>
        (await queryAccessLog(warehouse, orgId, filter)).map((r) => r.requestId);

      expect(await ids()).toEqual(['req-3', 'req-2', 'req-1', 'req-0']);
      expect(await ids({ tokenId: 'token-b' })).toEqual(['req-2', 'req-1']);
      expect(await ids({ status: 200 })).toEqual(['req-2', 'req-0']);
      expect(await ids({ tokenId: 'token-a', status: 500 })).toEqual(['req-3']);
      expect(await ids({ tokenId: 'token-c' })).toEqual([]);
      expect(await ids({ limit: 2 })).toEqual(['req-3', 'req-2']);
      expect(await ids({}, otherOrg)).toEqual(['req-4']);
    });

    it('stores values with quotes and newlines exactly', async () => {
      const org = randomUUID();
      const writer = new AccessLogWriter(warehouse, capturingLogger().logger, MANUAL);
      const userAgent = `curl/8.0 "quoted" it's\nnew-line \\ tab\t`;
      writer.write(
        row(org, 0, { user_agent: userAgent, path: "/api/v1/servers/x'); DROP TABLE access_log; --" }),
      );
      await writer.close();

      const [stored] = await queryAccessLog(warehouse, org);

      expect(stored?.userAgent).toBe(userAgent);
      expect(stored?.path).toBe("/api/v1/servers/x'); DROP TABLE access_log; --");
    });

    it('writes in batches of batchSize when flushed', async () => {
      const org = randomUUID();
      const writer = new AccessLogWriter(warehouse, capturingLogger().logger, {
        flushIntervalMs: 3_600_000,
        batchSize: 2,
      });
      for (let i = 0; i < 5; i++) writer.write(row(org, i));

      await writer.flush();
      const stored = await queryAccessLog(warehouse, org);
      await writer.close();

      expect(stored.map((r) => r.requestId)).toEqual(['req-4', 'req-3', 'req-2', 'req-1', 'req-0']);
    });

    it('drops the oldest rows past maxBuffered and logs how many', async () => {
      const org = randomUUID();
      const { logger, lines } = capturingLogger();
      const writer = new AccessLogWriter(warehouse, logger, { ...MANUAL, maxBuffered: 3 });
      for (let i = 0; i < 5; i++) writer.write(row(org, i));

      await writer.flush();
      const stored = await queryAccessLog(warehouse, org);
      await writer.close();

      expect(stored.map((r) => r.requestId)).toEqual(['req-4', 'req-3', 'req-2']);
      const drops = lines.filter((l) => l.msg === 'access log buffer full; oldest rows dropped');
      expect(drops.map((l) => l.dropped)).toEqual([1, 1]);
    });

    it('drops and logs a batch ClickHouse refuses for its content, so later rows are not blocked', async () => {
      const org = randomUUID();
      const { logger, lines } = capturingLogger();
      const writer = new AccessLogWriter(warehouse, logger, MANUAL);
      writer.write(row(org, 0, { time: 'not a time' }));

      await expect(writer.flush()).resolves.toBeUndefined();

      expect(await queryAccessLog(warehouse, org)).toEqual([]);
      expect(lines).toContainEqual(
        expect.objectContaining({ msg: 'access log batch refused; dropped', dropped: 1 }),
      );
      writer.write(row(org, 1));
      await writer.flush();
      expect((await queryAccessLog(warehouse, org)).map((r) => r.requestId)).toEqual(['req-1']);
      await writer.close();
    });

    it('flushes what is buffered on close', async () => {
      const org = randomUUID();
      const writer = new AccessLogWriter(warehouse, capturingLogger().logger, MANUAL);
      writer.write(row(org, 0));
      writer.write(row(org, 1));

      await writer.close();

      expect((await queryAccessLog(warehouse, org)).map((r) => r.requestId)).toEqual(['req-1', 'req-0']);
    });
  });
});
