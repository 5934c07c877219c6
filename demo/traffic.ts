/**
 * The demo's users: a pool of MCP clients (the TypeScript SDK's, over streamable HTTP) calling the
 * weather tools at a steady rate through Pylee's gateway, which picks the version of each new session
 * by the rollout's weights. Sessions come and go as real users' do (each client re-initializes after
 * a handful of calls), so a weight change reaches the traffic within seconds. What the gateway did is
 * read from its answers: every response names the version that served it (`x-pylee-version`).
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const CALLS = [
  { name: 'get_forecast', arguments: { city: 'Lisbon', days: 3 } },
  { name: 'get_alerts', arguments: { region: 'Iberia' } },
  { name: 'search_cities', arguments: { query: 'Port' } },
];

export interface TrafficOptions {
  /** The gateway endpoint of the server's environment (`…/{org}/{server}/{environment}/mcp`). */
  url: string;
  /** A Pylee token with the `connect` permission. */
  token: string;
  callsPerSecond: number;
  /**
   * Clients connected at once.
   * @defaultValue 25
   */
  clients?: number;
  /**
   * A session makes between `min` and `max` tool calls, then its client closes it and initializes a
   * new one.
   * @defaultValue `{ min: 5, max: 15 }`
   */
  callsPerSession?: { min: number; max: number };
}

/** What the gateway answered over a stretch of time, by the `x-pylee-version` of its responses. */
export interface Split {
  /** Tool calls answered, per version that served them. */
  calls: Record<string, number>;
  /** New sessions, per version the gateway put them on. */
  sessions: Record<string, number>;
  /** Live sessions whose calls began to be served by another version than the one they started on. */
  moved: { from: string; to: string }[];
  /** Calls that got no answer (HTTP or transport errors; tool errors are answers). */
  failed: number;
}

export interface Traffic {
  /** What the gateway answered since the previous `take()` (or the start). */
  take(): Split;
  calls(): number;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const emptySplit = (): Split => ({ calls: {}, sessions: {}, moved: [], failed: 0 });
const add = (counts: Record<string, number>, version: string) =>
  (counts[version] = (counts[version] ?? 0) + 1);

/** The version that answered a session last (its initialize, then each call), by the gateway's header. */
interface Served {
  by: string | undefined;
}

interface Session {
  client: Client;
  transport: StreamableHTTPClientTransport;
  calls: number;
  limit: number;
  busy: boolean;
}

/** Starts the pool; resolves once every client has a session, so a gateway that refuses fails here. */
export async function startTraffic(options: TrafficOptions): Promise<Traffic> {
  const size = options.clients ?? 25;
  const { min, max } = options.callsPerSession ?? { min: 5, max: 15 };
  let split = emptySplit();
  let calls = 0;
  let stopped = false;

  async function connect(): Promise<Session> {
    const served: Served = { by: undefined };
    // The SDK's fetch, watched: the version header of every answer, by the JSON-RPC method it answers.
    const watched = async (url: string | URL, init?: RequestInit): Promise<Response> => {
      const res = await fetch(url, init);
      const version = res.headers.get('x-pylee-version');
      const body = typeof init?.body === 'string' ? init.body : '';
      if (!version || !res.ok) return res;
      if (body.includes('"method":"initialize"')) {
        served.by = version;
        add(split.sessions, version);
      } else if (body.includes('"method":"tools/call"')) {
        add(split.calls, version);
        if (served.by !== undefined && served.by !== version)
          split.moved.push({ from: served.by, to: version });
        served.by = version;
      }
      return res;
    };
    const transport = new StreamableHTTPClientTransport(new URL(options.url), {
      requestInit: { headers: { authorization: `Bearer ${options.token}` } },
      fetch: watched,
    });
    const client = new Client({ name: 'pylee-demo-traffic', version: '1.0.0' });
    await client.connect(transport);
    const limit = min + Math.floor(Math.random() * (max - min + 1));
    return { client, transport, calls: 0, limit, busy: false };
  }

  /** The user goes away: the session ends (DELETE), and another user arrives in the slot. */
  function replace(slot: number, session: Session): void {
    pool[slot] = undefined;
    void session.transport
      .terminateSession()
      .catch(() => undefined)
      .finally(() => void session.client.close().catch(() => undefined));
    if (!stopped) void refill(slot);
  }

  async function refill(slot: number): Promise<void> {
    while (!stopped) {
      try {
        const session = await connect();
        if (stopped) await session.client.close();
        else pool[slot] = session;
        return;
      } catch {
        split.failed += 1;
        await sleep(500);
      }
    }
  }

  /** The first sessions: the gateway learns of a new deployment within a second, so a 503 is retried. */
  async function first(): Promise<Session> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        return await connect();
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await sleep(250);
      }
    }
  }

  const pool: (Session | undefined)[] = await Promise.all(Array.from({ length: size }, first));
  let next = 0;
  const timer = setInterval(() => {
    if (stopped) return;
    // The next idle client in turn; a slot whose user is between sessions is skipped.
    for (let tried = 0; tried < size; tried++) {
      const slot = (next + tried) % size;
      const session = pool[slot];
      if (!session || session.busy) continue;
      next = slot + 1;
      const call = CALLS[calls % CALLS.length]!;
      calls += 1;
      session.busy = true;
      session.calls += 1;
      // Tool errors come back as results; a refused session (or a broken transport) ends it, and the
      // user starts over with a new one, as an MCP client does.
      session.client
        .callTool(call)
        .then(
          () => {
            session.busy = false;
            if (session.calls >= session.limit && pool[slot] === session) replace(slot, session);
          },
          () => {
            split.failed += 1;
            if (pool[slot] === session) replace(slot, session);
          },
        )
        .catch(() => undefined);
      return;
    }
  }, 1000 / options.callsPerSecond);

  return {
    take() {
      const taken = split;
      split = emptySplit();
      return taken;
    },
    calls: () => calls,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(
        pool.map((session) =>
          session?.transport
            .terminateSession()
            .catch(() => undefined)
            .finally(() => session.client.close().catch(() => undefined)),
        ),
      );
    },
  };
}
