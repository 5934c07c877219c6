import type { SecretBox } from '#core/crypto/secret-box.ts';
import { outcomeOf, type RequestMessage, type ResponseMessage } from '#core/gateway/exchange.ts';
import type { Logger } from '#core/logger.ts';
import { clientKeyHash } from '#core/telemetry/client-key.ts';
import type { GatewayFronting } from '#core/telemetry/fronted.ts';
import { recordGatewayRowsDropped } from '#core/telemetry/metrics.ts';
import type { RequestRow, SessionEventRow } from '#core/warehouse/rows.ts';
import type { TelemetryWriter } from '#core/warehouse/telemetry-writer.ts';

/** Where an exchange happened: the dimensions of its rows. */
export interface ExchangeScope {
  orgId: string;
  server: string;
  /** '' for a pinned version (`/{org}/{server}@{version}/mcp`), which belongs to no environment. */
  environment: string;
  version: string;
  /** {@link Recorder.sessionKey} of the gateway session, '' without one. */
  sessionKey: string;
  /** {@link Recorder.clientKey} of the client, '' when nothing identifies it. */
  clientKey: string;
}

/** A request forwarded and not yet answered. */
export interface PendingCall {
  message: RequestMessage;
  /** Milliseconds since the epoch, for the row's time. */
  startedAt: number;
  /** `performance.now()` then, for the duration. */
  startedAtMonotonic: number;
}

/**
 * Turns what the gateway forwarded into telemetry: one request row per JSON-RPC request (operation,
 * outcome, JSON-RPC error code, duration), and session events. Rows go through the telemetry writer
 * (write-ahead log, batches, spool, dedup). The gateway passes an answer on only once
 * {@link Recorder.logged} resolves, so a call the client saw answered is in the log even if the
 * process is killed the next moment; a row the writer refuses is counted and logged, and the answer
 * still goes out.
 */
export class Recorder {
  readonly #writer: TelemetryWriter;
  readonly #box: SecretBox;
  readonly #fronting: GatewayFronting;
  readonly #logger: Logger;
  #rows: RequestRow[] = [];
  /** Resolves when the rows gathered this turn, and everything before them, are appended. */
  #turn: Promise<void> = Promise.resolve();
  /** Resolves when every append handed to the writer so far has settled. */
  #appended: Promise<void> = Promise.resolve();

  constructor(writer: TelemetryWriter, box: SecretBox, fronting: GatewayFronting, logger: Logger) {
    this.#writer = writer;
    this.#box = box;
    this.#fronting = fronting;
    this.#logger = logger;
  }

  /** A short keyed hash of a gateway session id: stable across replicas, and it does not open the session. */
  sessionKey(sessionId: string): string {
    return this.#box.fingerprint(`gateway-session:${sessionId}`).slice('sha256:'.length);
  }

  /** The stored form of a client key (token id, client key header or address): a keyed hash, never the key. */
  clientKey(key: string | undefined): string {
    return clientKeyHash(this.#box, key);
  }

  /** A request answered by `response` (a JSON-RPC response, in a JSON body or an SSE event). */
  answered(scope: ExchangeScope, call: PendingCall, response: ResponseMessage, httpStatus: number): void {
    const outcome = outcomeOf(response);
    this.#write(scope, call, {
      error: outcome.outcome === 'ok' ? 0 : 1,
      error_type: outcome.errorType,
      http_status: httpStatus,
    });
  }

  /** A request that got no JSON-RPC answer: `errorType` names why (`'502'`, `'upstream_disconnected'`). */
  failed(scope: ExchangeScope, call: PendingCall, errorType: string, httpStatus: number): void {
    this.#write(scope, call, { error: 1, error_type: errorType, http_status: httpStatus });
  }

  /** A session began, ended (`reason`: delete, rollback, terminated, upstream-failure) or moved. */
  session(scope: ExchangeScope, event: 'start' | 'end' | 'migrate', reason: string): void {
    const row: SessionEventRow = {
      org_id: scope.orgId,
      server: scope.server,
      environment: scope.environment,
      version: scope.version,
      session_id: scope.sessionKey,
      time: new Date().toISOString(),
      event,
      reason,
      client_key: scope.clientKey,
      source: 'gateway',
    };
    this.#track(
      this.#writer
        .writeSessionEvents([row])
        .catch((error: unknown) => this.#dropped(error, 1, 'session event')),
    );
  }

  /** Resolves once every row recorded so far is in the write-ahead log (or was refused and counted). */
  logged(): Promise<void> {
    return this.#rows.length > 0 ? this.#turn : this.#appended;
  }

  #write(
    scope: ExchangeScope,
    call: PendingCall,
    result: Pick<RequestRow, 'error' | 'error_type' | 'http_status'>,
  ): void {
    if (scope.environment) this.#fronting.mark(scope.orgId, scope.server, scope.environment);
    const row: RequestRow = {
      org_id: scope.orgId,
      server: scope.server,
      environment: scope.environment,
      version: scope.version,
      operation: call.message.operation,
      time: new Date(call.startedAt).toISOString(),
      duration_ms: performance.now() - call.startedAtMonotonic,
      ...result,
      mcp_method: call.message.method,
      tool: call.message.toolName ?? '',
      trace_id: '',
      span_id: '',
      session_id: scope.sessionKey,
      source: 'gateway',
      client_key: scope.clientKey,
      counted: 1,
    };
    // Rows of one turn of the event loop go to the writer together: one log append, not one each.
    this.#rows.push(row);
    if (this.#rows.length === 1) {
      let done!: () => void;
      this.#turn = new Promise<void>((resolve) => (done = resolve));
      setImmediate(() => void this.flush().then(done));
    }
  }

  /**
   * Hands the rows gathered so far to the writer (called once per turn, and before the writer
   * closes); resolves when they and every earlier append are in the log.
   */
  flush(): Promise<void> {
    const rows = this.#rows;
    if (rows.length > 0) {
      this.#rows = [];
      this.#track(
        this.#writer
          .writeRequests(rows)
          .catch((error: unknown) => this.#dropped(error, rows.length, 'request rows')),
      );
    }
    return this.#appended;
  }

  #track(append: Promise<void>): void {
    this.#appended = Promise.all([this.#appended, append]).then(() => undefined);
  }

  #dropped(error: unknown, count: number, what: string): void {
    recordGatewayRowsDropped(count);
    this.#logger.warn(
      { err: error, count },
      `the telemetry writer refused gateway ${what}; they are not recorded`,
    );
  }
}
