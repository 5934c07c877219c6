import type { Warehouse } from '#core/warehouse/client.ts';

/**
 * Fault injection at the ClickHouse client boundary, for tests of the real collector over real chDB:
 * the warehouse client's `exec` and `insert` (the writer's inserts) throw what an unreachable server
 * throws (`down`), wait at a gate (`slow`), or run and then lose their answer once (`answer-lost`).
 * Queries are never touched.
 */
export type StoreMode = 'up' | 'down' | 'slow' | 'answer-lost';

export interface WarehouseFaults {
  set(mode: StoreMode, options?: { gate?: Promise<void> }): void;
  /** Telemetry inserts refused while down, held at the gate, and run with their answer lost. */
  readonly counts: { refused: number; gated: number; answersLost: number };
  /** Puts the client's own methods back. */
  remove(): void;
}

const TELEMETRY_TABLES = ['requests', 'metric_points'];
const TELEMETRY_INSERT = /^\s*INSERT INTO (requests|metric_points)\b/i;

export function injectWarehouseFaults(warehouse: Warehouse): WarehouseFaults {
  const client = warehouse.client;
  const exec = client.exec.bind(client);
  const insert = client.insert.bind(client);
  let mode: StoreMode = 'up';
  let gate: Promise<void> = Promise.resolve();
  const counts = { refused: 0, gated: 0, answersLost: 0 };

  const around = async <T>(telemetry: boolean, run: () => Promise<T>): Promise<T> => {
    if (mode === 'down') {
      if (telemetry) counts.refused++;
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:8123'), { code: 'ECONNREFUSED' });
    }
    if (mode === 'slow') {
      if (telemetry) counts.gated++;
      await gate;
    }
    const result = await run();
    if (mode === 'answer-lost' && telemetry) {
      mode = 'up'; // once: the insert ran, the caller never heard
      counts.answersLost++;
      throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    }
    return result;
  };
  client.exec = ((params: Parameters<typeof exec>[0]) =>
    around(TELEMETRY_INSERT.test(params.query), () => exec(params))) as typeof client.exec;
  client.insert = ((params: Parameters<typeof insert>[0]) =>
    around(TELEMETRY_TABLES.includes(params.table), () => insert(params))) as typeof client.insert;

  return {
    counts,
    set(next, options = {}) {
      mode = next;
      gate = options.gate ?? Promise.resolve();
    },
    remove() {
      mode = 'up';
      const own = client as unknown as Record<string, unknown>;
      delete own.exec;
      delete own.insert;
    },
  };
}
