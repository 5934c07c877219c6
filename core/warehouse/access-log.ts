import type { Logger } from '../logger.ts';
import { isClickHouseError, type Warehouse } from './client.ts';

export interface AccessLogRow {
  org_id: string;
  /** RFC 3339 */
  time: string;
  request_id: string;
  role: string;
  method: string;
  route: string;
  path: string;
  status: number;
  duration_ms: number;
  token_id: string;
  client_address: string;
  user_agent: string;
}

export interface AccessLogOptions {
  /** @defaultValue 1000 */
  batchSize?: number;
  /** @defaultValue 2000 */
  flushIntervalMs?: number;
  /** Rows kept while ClickHouse is unreachable; the oldest go first. @defaultValue 50000 */
  maxBuffered?: number;
}

/**
 * Buffers access-log rows and inserts them in batches, off the request path. It is a best-effort
 * record (the audit trail is the authoritative one): when ClickHouse stays down past the buffer,
 * the oldest rows are dropped and the count is logged.
 */
export class AccessLogWriter {
  readonly #warehouse: Warehouse;
  readonly #logger: Logger;
  readonly #batchSize: number;
  readonly #maxBuffered: number;
  readonly #timer: NodeJS.Timeout;
  #buffer: AccessLogRow[] = [];
  #flushing: Promise<void> | undefined;

  constructor(warehouse: Warehouse, logger: Logger, options: AccessLogOptions = {}) {
    this.#warehouse = warehouse;
    this.#logger = logger;
    this.#batchSize = options.batchSize ?? 1000;
    this.#maxBuffered = options.maxBuffered ?? 50_000;
    this.#timer = setInterval(() => void this.flush(), options.flushIntervalMs ?? 2000);
    this.#timer.unref();
  }

  write(row: AccessLogRow): void {
    this.#buffer.push(row);
    this.#trim();
    if (this.#buffer.length >= this.#batchSize) void this.flush();
  }

  /** Inserts what is buffered; one flush at a time. */
  flush(): Promise<void> {
    this.#flushing ??= this.#drain().finally(() => (this.#flushing = undefined));
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#buffer.length > 0) {
      // Taken out first, so rows written meanwhile (and the overflow rule) never touch this batch.
      const batch = this.#buffer.splice(0, this.#batchSize);
      try {
        await this.#warehouse.client.insert({
          table: 'access_log',
          values: batch,
          format: 'JSONEachRow',
          clickhouse_settings: { date_time_input_format: 'best_effort' },
        });
      } catch (error) {
        if (isClickHouseError(error)) {
          // The server refused these rows themselves: retrying would block every row behind them.
          this.#logger.warn({ err: error, dropped: batch.length }, 'access log batch refused; dropped');
          continue;
        }
        this.#buffer.unshift(...batch);
        this.#trim();
        this.#logger.warn({ err: error, rows: this.#buffer.length }, 'access log insert failed; will retry');
        return;
      }
    }
  }

  #trim(): void {
    if (this.#buffer.length <= this.#maxBuffered) return;
    const dropped = this.#buffer.length - this.#maxBuffered;
    this.#buffer.splice(0, dropped);
    this.#logger.warn({ dropped }, 'access log buffer full; oldest rows dropped');
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }
}

export interface AccessLogQuery {
  tokenId?: string | undefined;
  status?: number | undefined;
  limit?: number | undefined;
}

/** An org's most recent API requests, newest first. */
export async function queryAccessLog(warehouse: Warehouse, orgId: string, filter: AccessLogQuery = {}) {
  const result = await warehouse.client.query({
    query: `SELECT formatDateTime(time, '%Y-%m-%dT%H:%i:%S.%fZ', 'UTC') AS time, request_id AS requestId,
              method, route, path, status, duration_ms AS durationMs, token_id AS tokenId,
              client_address AS clientAddress, user_agent AS userAgent
            FROM access_log
            WHERE org_id = {org:String}
              AND ({token:String} = '' OR token_id = {token:String})
              AND ({status:UInt16} = 0 OR status = {status:UInt16})
            ORDER BY access_log.time DESC
            LIMIT {limit:UInt32}`,
    query_params: {
      org: orgId,
      token: filter.tokenId ?? '',
      status: filter.status ?? 0,
      limit: filter.limit ?? 100,
    },
    format: 'JSONEachRow',
  });
  return result.json<{
    time: string;
    requestId: string;
    method: string;
    route: string;
    path: string;
    status: number;
    durationMs: number;
    tokenId: string;
    clientAddress: string;
    userAgent: string;
  }>();
}
