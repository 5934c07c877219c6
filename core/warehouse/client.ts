import fs from 'node:fs/promises';
import path from 'node:path';
import { ClickHouseError, createClient, type ClickHouseClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';

/** The telemetry store: one client API (`@clickhouse/client`) for chDB and a ClickHouse server. */
export interface Warehouse {
  readonly driver: 'chdb' | 'clickhouse';
  readonly client: ClickHouseClient;
  ping(): Promise<void>;
  close(): Promise<void>;
}

// 64-bit integers as JSON numbers on every server version, as chDB already does.
const SETTINGS = { output_format_json_quote_64bit_integers: 0 } as const;

type ChdbAsClientConnection = NonNullable<NonNullable<Parameters<typeof createClient>[0]>['connection']>;

/** Opens ClickHouse at `clickhouseUrl` when set, else embedded chDB in `<dataDir>/clickhouse`. */
export async function openWarehouse(options: {
  clickhouseUrl?: string | undefined;
  dataDir: string;
}): Promise<Warehouse> {
  let driver: Warehouse['driver'];
  let client: ClickHouseClient;
  if (options.clickhouseUrl) {
    driver = 'clickhouse';
    client = createClient({
      url: options.clickhouseUrl,
      request_timeout: 30_000,
      clickhouse_settings: SETTINGS,
    });
  } else {
    driver = 'chdb';
    const dir = path.join(options.dataDir, 'clickhouse');
    await fs.mkdir(dir, { recursive: true });
    // chdb builds against its own copy of @clickhouse/client-common's types; the runtime shape is the same.
    const connection = createChdbConnection({ path: dir }) as unknown as ChdbAsClientConnection;
    client = createClient({ connection, clickhouse_settings: SETTINGS });
  }
  const warehouse: Warehouse = {
    driver,
    client,
    async ping() {
      const result = await client.ping();
      if (!result.success) throw result.error;
    },
    close: () => client.close(),
  };
  try {
    await warehouse.ping();
  } catch (error) {
    await client.close().catch(() => {});
    throw error;
  }
  return warehouse;
}

/**
 * An error the ClickHouse server (or chDB) answered with, as opposed to a connection failure.
 * chDB builds its errors from the CommonJS copy of @clickhouse/client-common, so `instanceof`
 * against the class this ES module imports is false for them: the name is matched too.
 */
export function isClickHouseError(error: unknown): error is ClickHouseError {
  return (
    error instanceof ClickHouseError ||
    (error instanceof Error && error.constructor.name === 'ClickHouseError')
  );
}
