/**
 * The demo's users: MCP clients (the TypeScript SDK's, over streamable HTTP) calling the weather
 * tools at a steady rate, split between versions by the weights the rollout announces — the part a
 * gateway or load balancer plays in production.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const CALLS = [
  { name: 'get_forecast', arguments: { city: 'Lisbon', days: 3 } },
  { name: 'get_alerts', arguments: { region: 'Iberia' } },
  { name: 'search_cities', arguments: { query: 'Port' } },
];

export interface Traffic {
  /** Percent of calls per target URL; the rest go to the first target. */
  setWeights(weights: Record<string, number>): void;
  calls(): number;
  stop(): Promise<void>;
}

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'pylee-demo-traffic', version: '1.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

export async function startTraffic(urls: string[], callsPerSecond: number): Promise<Traffic> {
  const clients = new Map<string, Client>();
  for (const url of urls) clients.set(url, await connect(url));
  let weights: Record<string, number> = { [urls[0]!]: 100 };
  let calls = 0;
  let stopped = false;

  const pick = (): Client => {
    let roll = Math.random() * 100;
    for (const [url, weight] of Object.entries(weights)) {
      roll -= weight;
      if (roll < 0 && clients.has(url)) return clients.get(url)!;
    }
    return clients.get(urls[0]!)!;
  };

  const timer = setInterval(() => {
    if (stopped) return;
    const call = CALLS[calls % CALLS.length]!;
    calls += 1;
    // Tool errors come back as results; transport errors are part of what the demo shows, not fatal.
    pick()
      .callTool(call)
      .catch(() => undefined);
  }, 1000 / callsPerSecond);

  return {
    setWeights(next) {
      weights = next;
    },
    calls: () => calls,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all([...clients.values()].map((client) => client.close().catch(() => undefined)));
    },
  };
}
