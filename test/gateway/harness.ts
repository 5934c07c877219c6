import type { AddressInfo } from 'node:net';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';
import type { Stores } from '#core/stores.ts';
import { buildGateway } from '#gateway/app.ts';
import type { UpstreamTimeouts } from '#gateway/upstream-client.ts';
import { bearer, BOOTSTRAP_TOKEN, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { silentLogger } from '#test/helpers/stores.ts';
import { startUpstream, type Upstream } from './upstream.ts';

/**
 * What the gateway test files share: a gateway on the test stores, and a server whose versions
 * each run as their own SDK server, set up through the real API.
 */

export async function startTestGateway(
  stores: Pick<Stores, 'db' | 'warehouse' | 'redis'> & { dir: string },
  options: { timeouts?: UpstreamTimeouts; rateLimitMax?: number; allowedOrigins?: string[] } = {},
): Promise<{ app: FastifyInstance; base: string }> {
  const app = await buildGateway({
    timeouts: options.timeouts,
    stores,
    logger: silentLogger,
    secretBox: testSecretBox,
    config: {
      dataDir: stores.dir,
      gatewayBodyLimit: 64 * 1024,
      gatewayAllowedOrigins: options.allowedOrigins ?? [],
      gatewayRateLimitMax: options.rateLimitMax ?? 1_000_000,
      rateLimit: { max: 1_000_000, windowMs: 60_000 },
    },
    // An hour: a rollout change must reach the gateway by its Redis signal, not by the refresh.
    refreshMs: 3_600_000,
    writer: { flushIntervalMs: 50, wal: false },
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH';

/** API calls as the bootstrap admin, each expected to succeed; servers and rollouts in `development`. */
export function apiFixture(api: () => TestApi, upstreams: Upstream[]) {
  async function ok<T = Record<string, unknown>>(method: Method, url: string, payload?: object) {
    const res = await api().app.inject({
      method,
      url: `/api/v1${url}`,
      headers: bearer(BOOTSTRAP_TOKEN),
      payload,
    });
    expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    return res.json() as T;
  }

  /** A server whose versions each run as their own SDK server, the first stable in development. */
  async function serverWith(slug: string, versions: string[]): Promise<Record<string, Upstream>> {
    await ok('POST', '/servers', { slug });
    const out: Record<string, Upstream> = {};
    for (const version of versions) {
      const upstream = await startUpstream(version);
      upstreams.push(upstream);
      out[version] = upstream;
      await ok('POST', `/servers/${slug}/versions`, {
        version,
        remotes: [{ type: 'streamable-http', url: upstream.url }],
      });
    }
    await ok('POST', `/servers/${slug}/deployments`, { version: versions[0], environment: 'development' });
    return out;
  }

  /** A canary of `version` pausing (for approval) at each of `weights`, then 100 %. */
  function canary(slug: string, version: string, weights: number[], extra: object = {}) {
    return ok<{ id: string }>('POST', `/servers/${slug}/deployments`, {
      version,
      environment: 'development',
      strategy: 'canary',
      steps: [...weights.map((weight) => ({ weight, pause: { approval: true } })), { weight: 100 }],
      ...extra,
    });
  }

  return { ok, serverWith, canary };
}

/** The version that answered: the test upstreams' `whoami` tool says it. */
export async function whoami(client: Client): Promise<string> {
  const result = (await client.callTool({ name: 'whoami', arguments: {} })) as {
    content: { text: string }[];
  };
  return result.content[0]?.text ?? '';
}
