import path from 'node:path';
import { readMigrations } from '../db/migrate.ts';
import type { Warehouse } from './client.ts';

const MIGRATIONS_DIR = path.join(import.meta.dirname, 'migrations');

/**
 * Applies pending ClickHouse migrations and records them in `schema_migrations`. ClickHouse has
 * no transactions or locks, so every statement is idempotent (`IF NOT EXISTS`) and two processes
 * migrating at once converge; the record table deduplicates by version.
 */
export async function migrateWarehouse(warehouse: Warehouse, dir = MIGRATIONS_DIR): Promise<number[]> {
  const { client } = warehouse;
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations (
      version UInt32,
      name String,
      applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
    ) ENGINE = ReplacingMergeTree ORDER BY version`,
  });
  const result = await client.query({
    query: 'SELECT DISTINCT version FROM schema_migrations',
    format: 'JSONEachRow',
  });
  const done = new Set((await result.json<{ version: number }>()).map((r) => Number(r.version)));
  const applied: number[] = [];
  for (const m of await readMigrations(dir)) {
    if (done.has(m.version)) continue;
    for (const statement of splitStatements(m.sql)) await client.command({ query: statement });
    await client.insert({
      table: 'schema_migrations',
      values: [{ version: m.version, name: m.name }],
      format: 'JSONEachRow',
    });
    applied.push(m.version);
  }
  return applied;
}

/**
 * ClickHouse takes one statement per request. Migration files end each statement with `;` at the
 * end of a line; `--` comments (whole lines or after code) are removed first, so they may hold `;`.
 */
export function splitStatements(sql: string): string[] {
  return sql
    .replace(/--[^'\n]*$/gm, '')
    .split(/;\s*$/m)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
