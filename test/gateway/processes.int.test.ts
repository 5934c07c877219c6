import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRedis, type RedisStore } from '#core/queue/redis.ts';
import { socketPathFor } from '#core/queue/local-redis.ts';
import { createTestDatabase, POSTGRES_ADMIN_URL, type TestDatabase } from '#test/helpers/postgres.ts';
import { killLeftovers, platformEnv, startPylee, type PyleeProcess } from '#test/helpers/pylee-process.ts';
import { silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { until } from '#test/helpers/until.ts';
import { startUpstream, type Upstream } from './upstream.ts';

// Scale-out with real processes: an API process and two gateway processes (`pylee start --role …`)
// on one PostgreSQL server and one Redis, each with its own data dir. A session one gateway issued
// is served by the other; a rollout change made through the API reaches both over Redis; a session
// a rollback migrated on one is followed by the other.

const TOKEN = 'pyl_gateway-processes-test-0123456789';

describe.skipIf(!POSTGRES_ADMIN_URL)('two gateway processes on one PostgreSQL and Redis', () => {
  let database: TestDatabase;
  let redis: RedisStore;
  let api: PyleeProcess;
  let gateways: PyleeProcess[] = [];
  const upstreams: Upstream[] = [];
  let connectToken: string;

  async function call<T>(method: string, path: string, body?: object): Promise<T> {
    const res = await fetch(`${api.apiUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    expect(res.status, `${method} ${path}: ${text}`).toBeLessThan(300);
    return JSON.parse(text) as T;
  }

  /** A JSON-RPC request to gateway `g`, in session `session` when given. */
  async function rpc(g: number, body: object, session?: string) {
    const res = await fetch(`${gateways[g]?.gatewayUrl}/default/scaled/development/mcp`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${connectToken}`,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-06-18',
        ...(session ? { 'mcp-session-id': session } : {}),
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, text: await res.text(), headers: res.headers };
  }
  const initialize = async (g: number) => {
    const res = await rpc(g, {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'p', version: '1' } },
    });
    expect(res.status, res.text).toBe(200);
    const session = res.headers.get('mcp-session-id') ?? '';
    await rpc(g, { jsonrpc: '2.0', method: 'notifications/initialized' }, session);
    return { session, version: res.headers.get('x-pylee-version') ?? '' };
  };
  const whoami = async (g: number, session: string) => {
    const res = await rpc(
      g,
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'whoami', arguments: {} } },
      session,
    );
    expect(res.status, res.text).toBe(200);
    return /"text":"([^"]+)"/.exec(res.text)?.[1];
  };

  beforeAll(async () => {
    database = await createTestDatabase();
    const redisDir = tempDir('pylee-gateway-redis');
    redis = await openRedis({ dataDir: redisDir, redisUrl: undefined }, silentLogger);
    const shared = {
      PYLEE_DATABASE_URL: database.url,
      PYLEE_REDIS_URL: `unix://${socketPathFor(`${redisDir}/redis`)}`,
      PYLEE_SECRET_KEY: randomBytes(32).toString('hex'),
      PYLEE_BOOTSTRAP_TOKEN: TOKEN,
      PYLEE_LOG_FORMAT: 'json',
    };
    api = await startPylee({ env: platformEnv(tempDir('pylee-api'), shared), args: ['--role', 'api'] });
    gateways = await Promise.all(
      [0, 1].map(() =>
        startPylee({ env: platformEnv(tempDir('pylee-gw'), shared), args: ['--role', 'gateway'] }),
      ),
    );
    for (const version of ['1.0.0', '1.1.0']) upstreams.push(await startUpstream(version));
    await call('POST', '/servers', { slug: 'scaled' });
    for (const u of upstreams) {
      await call('POST', '/servers/scaled/versions', {
        version: u.version,
        remotes: [{ type: 'streamable-http', url: u.url }],
      });
    }
    await call('POST', '/servers/scaled/deployments', { version: '1.0.0', environment: 'development' });
    connectToken = (
      await call<{ token: string }>('POST', '/tokens', { name: 'mcp', permissions: ['connect'] })
    ).token;
  }, 120_000);
  afterAll(async () => {
    await Promise.all([...gateways, api].filter(Boolean).map((p) => p.stop()));
    for (const u of upstreams) await u.close();
    await redis?.close();
    await database?.drop();
    await killLeftovers();
  });

  it('serves on one gateway the sessions the other issued, and both follow the rollout', async () => {
    const first = await initialize(0);
    expect(first.version).toBe('1.0.0');
    expect(await whoami(1, first.session)).toBe('1.0.0');

    const canary = await call<{ id: string }>('POST', '/servers/scaled/deployments', {
      version: '1.1.0',
      environment: 'development',
      strategy: 'canary',
      steps: [{ weight: 50, pause: { approval: true } }, { weight: 100 }],
    });
    // Both processes heard of the canary (Redis pub/sub between processes).
    for (const g of [0, 1]) {
      await until(async () => (await initialize(g)).version === '1.1.0', {
        what: `the canary at gateway ${g}`,
      });
    }
    let onCanary: string | undefined;
    while (!onCanary) {
      const s = await initialize(0);
      if (s.version === '1.1.0') onCanary = s.session;
    }
    expect(await whoami(1, onCanary)).toBe('1.1.0');

    await call('POST', `/servers/scaled/deployments/${canary.id}/rollback`, {});
    // Migrated by the second gateway; the first follows the move it recorded.
    await until(async () => (await whoami(1, onCanary)) === '1.0.0', { what: 'the migration at gateway 1' });
    expect(await whoami(0, onCanary)).toBe('1.0.0');
    expect(await whoami(1, first.session)).toBe('1.0.0');
  });
});
