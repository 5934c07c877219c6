import { startUpstream, type Upstream } from '../gateway/upstream.ts';
import type { Platform } from './platform.ts';

/**
 * Server `weather` on a real platform, each version its own SDK MCP server: 1.0.0 stable in
 * production and 1.1.0 a canary there at 50 %. Returns the upstreams by version and the gateway
 * endpoint of production, which the browser suites' MCP clients connect to.
 */
export async function weatherCanaryBehindGateway(
  platform: Platform,
): Promise<{ upstreams: Record<string, Upstream>; endpoint: string }> {
  await platform.call('POST', '/servers', { slug: 'weather', name: 'Weather', description: '' });
  const upstreams: Record<string, Upstream> = {};
  for (const version of ['1.0.0', '1.1.0']) {
    const upstream = await startUpstream(version);
    upstreams[version] = upstream;
    await platform.call('POST', '/servers/weather/versions', {
      version,
      status: 'stable',
      remotes: [{ type: 'streamable-http', url: upstream.url }],
    });
  }
  await platform.call('POST', '/servers/weather/deployments', {
    version: '1.0.0',
    environment: 'production',
    strategy: 'immediate',
  });
  await platform.call('POST', '/servers/weather/deployments', {
    version: '1.1.0',
    environment: 'production',
    strategy: 'canary',
    steps: [{ weight: 50, pause: { approval: true } }, { weight: 100 }],
  });
  const { environments } = await platform.call<{ environments: { environment: string; url: string }[] }>(
    'GET',
    '/servers/weather/gateway',
  );
  return { upstreams, endpoint: environments.find((e) => e.environment === 'production')?.url ?? '' };
}
