import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Permission } from '#core/auth/principal.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';
import { saveToolSnapshot } from '#core/health/tools.ts';

type Stores = Awaited<ReturnType<typeof openTestStores>>;

interface RouteCase {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  route: string;
  /** null: any valid token may call it. */
  needs: Permission | null;
  /** Answers without a token too (the web UI's session probe: 200 `{ authenticated: false }`). */
  anonymous?: true;
  /** Builds a fresh request (a victim token to revoke, a new org slug…) for one call. */
  request(): Promise<{ url: string; body?: unknown }>;
}

let stores: Stores;
let api: TestApi;
let seq = 0;
const fresh = () => `case-${++seq}`;

const tokenId = async () => {
  const res = await api.app.inject({
    method: 'POST',
    url: '/api/v1/tokens',
    headers: bearer(BOOTSTRAP_TOKEN),
    payload: { name: fresh(), permissions: ['read'] },
  });
  return (res.json() as { id: string }).id;
};

const asAdmin = async (method: RouteCase['method'], url: string, payload?: object) => {
  const res = await api.app.inject({ method, url, headers: bearer(BOOTSTRAP_TOKEN), payload });
  if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
  return res.json() as Record<string, unknown>;
};
const freshServer = async () => (await asAdmin('POST', '/api/v1/servers', { slug: fresh() })).slug as string;
let patch = 0;
const freshVersion = () => `1.0.${++patch}`;
/** A template with 1.0.0 stable, created on first use. */
let templateReady: Promise<string> | undefined;
const matrixTemplate = () =>
  (templateReady ??= (async () => {
    await asAdmin('POST', '/api/v1/templates', { slug: 'tmatrix' });
    await asAdmin('POST', '/api/v1/templates/tmatrix/versions', { version: '1.0.0', status: 'stable' });
    return 'tmatrix';
  })());

/** A server with 1.0.0 stable in staging and 1.1.0 rolling out there as a canary (paused by `pause`). */
const freshRollout = async (pause: string | { approval: true } = { approval: true }) => {
  const server = await freshServer();
  for (const version of ['1.0.0', '1.1.0'])
    await asAdmin('POST', `/api/v1/servers/${server}/versions`, { version, status: 'stable' });
  await asAdmin('POST', `/api/v1/servers/${server}/deployments`, {
    version: '1.0.0',
    environment: 'staging',
  });
  const d = await asAdmin('POST', `/api/v1/servers/${server}/deployments`, {
    version: '1.1.0',
    environment: 'staging',
    strategy: 'canary',
    steps: [{ weight: 10, pause }, { weight: 100 }],
  });
  return { server, id: d.id as string, url: `/api/v1/servers/${server}/deployments/${d.id as string}` };
};

const deploymentRoutes: RouteCase[] = [
  {
    method: 'GET',
    route: '/api/v1/environments',
    needs: 'read',
    request: async () => ({ url: '/api/v1/environments' }),
  },
  {
    method: 'POST',
    route: '/api/v1/environments',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/environments', body: { name: fresh() } }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/environments/:environment',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/environments/development', body: { description: fresh() } }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/environments/:environment',
    needs: 'admin',
    request: async () => {
      const name = fresh();
      await asAdmin('POST', '/api/v1/environments', { name });
      return { url: `/api/v1/environments/${name}` };
    },
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/environments',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/environments' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/environments/:environment/routing',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/environments/development/routing' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/deployments',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/deployments?environment=staging' }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/deployments',
    needs: 'deploy',
    request: async () => {
      const server = await freshServer();
      await asAdmin('POST', `/api/v1/servers/${server}/versions`, { version: '1.0.0' });
      return {
        url: `/api/v1/servers/${server}/deployments`,
        body: { version: '1.0.0', environment: 'development' },
      };
    },
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/deployments/:id',
    needs: 'read',
    request: async () => ({ url: (await freshRollout()).url }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/deployments/:id/promote',
    needs: 'deploy',
    request: async () => ({ url: `${(await freshRollout()).url}/promote`, body: {} }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/deployments/:id/pause',
    needs: 'deploy',
    request: async () => ({ url: `${(await freshRollout('1h')).url}/pause`, body: {} }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/deployments/:id/resume',
    needs: 'deploy',
    request: async () => {
      const { url } = await freshRollout('1h');
      await asAdmin('POST', `${url}/pause`, {});
      return { url: `${url}/resume`, body: {} };
    },
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/deployments/:id/abort',
    needs: 'deploy',
    request: async () => ({ url: `${(await freshRollout()).url}/abort`, body: {} }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/deployments/:id/rollback',
    needs: 'deploy',
    request: async () => ({ url: `${(await freshRollout()).url}/rollback`, body: {} }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/rollback',
    needs: 'deploy',
    request: async () => ({
      url: `/api/v1/servers/${(await freshRollout()).server}/rollback`,
      body: { environment: 'staging' },
    }),
  },
];

/** The three scopes variables hang from, each with its own routes. */
const SCOPES = [
  { route: '/api/v1', url: () => '/api/v1' },
  { route: '/api/v1/servers/:server', url: () => '/api/v1/servers/matrix' },
  { route: '/api/v1/servers/:server/versions/:version', url: () => '/api/v1/servers/matrix/versions/1.0.0' },
];

const variableRoutes: RouteCase[] = SCOPES.flatMap((scope) =>
  (['variables', 'secrets'] as const)
    .flatMap((kind): RouteCase[] => [
      {
        method: 'GET',
        route: `${scope.route}/${kind}`,
        needs: 'read',
        request: async () => ({ url: `${scope.url()}/${kind}` }),
      },
      {
        method: 'PUT',
        route: `${scope.route}/${kind}/:name`,
        needs: 'write',
        request: async () => ({ url: `${scope.url()}/${kind}/VAR_${++seq}`, body: { value: 'v' } }),
      },
      {
        method: 'DELETE',
        route: `${scope.route}/${kind}/:name`,
        needs: 'write',
        request: async () => {
          const url = `${scope.url()}/${kind}/VAR_${++seq}`;
          await asAdmin('PUT', url, { value: 'v' });
          return { url };
        },
      },
    ])
    .concat({
      method: 'GET',
      route: `${scope.route}/secrets/:name/history`,
      needs: 'read',
      request: async () => ({ url: `${scope.url()}/secrets/MATRIX_SECRET/history` }),
    }),
);

/** Every /api/v1 route. A test below fails when a route exists that is not in this table. */
const freshChannel = async (kind: 'slack' | 'webhook' = 'webhook') =>
  (await asAdmin('POST', '/api/v1/channels', { name: fresh(), kind, url: 'http://127.0.0.1:9/hook' }))
    .id as string;
const freshSilence = async () =>
  (
    await asAdmin('POST', '/api/v1/silences', {
      matchers: [{ name: 'server', op: '=', value: fresh() }],
      endsAt: new Date(Date.now() + 3_600_000).toISOString(),
      comment: 'permissions test',
    })
  ).id as string;
const deadDelivery = async () => {
  const { deliveryId } = await asAdmin('POST', `/api/v1/channels/${await freshChannel()}/test`);
  await stores.db.query(`UPDATE notification_deliveries SET status = 'dead' WHERE id = $1`, [deliveryId]);
  return deliveryId as string;
};

/** Notification channels (admin), silences (write), deliveries (read; redeliver: write). */
const notifyRoutes: RouteCase[] = [
  {
    method: 'GET',
    route: '/api/v1/channels',
    needs: 'read',
    request: async () => ({ url: '/api/v1/channels' }),
  },
  {
    method: 'POST',
    route: '/api/v1/channels',
    needs: 'admin',
    request: async () => ({
      url: '/api/v1/channels',
      body: { name: fresh(), kind: 'slack', url: 'http://127.0.0.1:9/slack' },
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/channels/:id',
    needs: 'read',
    request: async () => ({ url: `/api/v1/channels/${await freshChannel()}` }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/channels/:id',
    needs: 'admin',
    request: async () => ({ url: `/api/v1/channels/${await freshChannel()}`, body: { events: ['alert.*'] } }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/channels/:id',
    needs: 'admin',
    request: async () => ({ url: `/api/v1/channels/${await freshChannel()}` }),
  },
  {
    method: 'POST',
    route: '/api/v1/channels/:id/rotate-secret',
    needs: 'admin',
    request: async () => ({ url: `/api/v1/channels/${await freshChannel()}/rotate-secret` }),
  },
  {
    method: 'POST',
    route: '/api/v1/channels/:id/test',
    needs: 'write',
    request: async () => ({ url: `/api/v1/channels/${await freshChannel()}/test` }),
  },
  {
    method: 'GET',
    route: '/api/v1/silences',
    needs: 'read',
    request: async () => ({ url: '/api/v1/silences' }),
  },
  {
    method: 'POST',
    route: '/api/v1/silences',
    needs: 'write',
    request: async () => ({
      url: '/api/v1/silences',
      body: {
        matchers: [{ name: 'server', op: '=', value: fresh() }],
        endsAt: new Date(Date.now() + 3_600_000).toISOString(),
        comment: 'maintenance',
      },
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/silences/:id',
    needs: 'read',
    request: async () => ({ url: `/api/v1/silences/${await freshSilence()}` }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/silences/:id',
    needs: 'write',
    request: async () => ({ url: `/api/v1/silences/${await freshSilence()}` }),
  },
  {
    method: 'GET',
    route: '/api/v1/deliveries',
    needs: 'read',
    request: async () => ({ url: '/api/v1/deliveries?status=dead' }),
  },
  {
    method: 'GET',
    route: '/api/v1/deliveries/:id',
    needs: 'read',
    request: async () => ({ url: `/api/v1/deliveries/${await deadDelivery()}` }),
  },
  {
    method: 'POST',
    route: '/api/v1/deliveries/:id/redeliver',
    needs: 'write',
    request: async () => ({ url: `/api/v1/deliveries/${await deadDelivery()}/redeliver` }),
  },
];

const inhibitionBody = () => ({
  name: fresh(),
  sourceMatchers: [{ name: 'severity', op: '=', value: 'critical' }],
  targetMatchers: [{ name: 'server', op: '=', value: fresh() }],
  equal: ['environment'],
});
const freshInhibition = async () =>
  (await asAdmin('POST', '/api/v1/inhibitions', inhibitionBody())).id as string;

/** Inhibition rules: read to list, write to change. */
const inhibitionRoutes: RouteCase[] = [
  {
    method: 'GET',
    route: '/api/v1/inhibitions',
    needs: 'read',
    request: async () => ({ url: '/api/v1/inhibitions' }),
  },
  {
    method: 'POST',
    route: '/api/v1/inhibitions',
    needs: 'write',
    request: async () => ({ url: '/api/v1/inhibitions', body: inhibitionBody() }),
  },
  {
    method: 'GET',
    route: '/api/v1/inhibitions/:id',
    needs: 'read',
    request: async () => ({ url: `/api/v1/inhibitions/${await freshInhibition()}` }),
  },
  {
    method: 'PUT',
    route: '/api/v1/inhibitions/:id',
    needs: 'write',
    request: async () => ({ url: `/api/v1/inhibitions/${await freshInhibition()}`, body: inhibitionBody() }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/inhibitions/:id',
    needs: 'write',
    request: async () => ({ url: `/api/v1/inhibitions/${await freshInhibition()}` }),
  },
];

const retentionBody = { keepPerLine: 3, keepDeployedWithinDays: 30 };

/** Version retention: read to see a policy and its dry run, write to change one. */
const retentionRoutes: RouteCase[] = [
  {
    method: 'GET',
    route: '/api/v1/servers/:server/retention',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/retention' }),
  },
  {
    method: 'PUT',
    route: '/api/v1/servers/:server/retention',
    needs: 'write',
    request: async () => ({ url: `/api/v1/servers/${await freshServer()}/retention`, body: retentionBody }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/servers/:server/retention',
    needs: 'write',
    request: async () => {
      const server = await freshServer();
      await asAdmin('PUT', `/api/v1/servers/${server}/retention`, retentionBody);
      return { url: `/api/v1/servers/${server}/retention` };
    },
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/retention/preview',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/retention/preview' }),
  },
  {
    method: 'GET',
    route: '/api/v1/retention',
    needs: 'read',
    request: async () => ({ url: '/api/v1/retention' }),
  },
  {
    method: 'PUT',
    route: '/api/v1/retention',
    needs: 'write',
    request: async () => ({ url: '/api/v1/retention', body: retentionBody }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/retention',
    needs: 'write',
    request: async () => {
      await asAdmin('PUT', '/api/v1/retention', retentionBody);
      return { url: '/api/v1/retention' };
    },
  },
];

/** A server with 1.0.0 and 1.1.0 and no telemetry: an analysis of them runs and is inconclusive. */
const freshAnalysisServer = async () => {
  const server = await freshServer();
  for (const version of ['1.0.0', '1.1.0'])
    await asAdmin('POST', `/api/v1/servers/${server}/versions`, { version, status: 'stable' });
  return server;
};
const analysisBody = { candidate: '1.1.0', baseline: '1.0.0', environment: 'staging', window: '30m' };

const analysisRoutes: RouteCase[] = [
  {
    method: 'GET',
    route: '/api/v1/servers/:server/analyses',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/analyses?environment=staging' }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/analyses',
    needs: 'deploy',
    request: async () => ({
      url: `/api/v1/servers/${await freshAnalysisServer()}/analyses`,
      body: analysisBody,
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/analyses/:id',
    needs: 'read',
    request: async () => {
      const server = await freshAnalysisServer();
      const a = await asAdmin('POST', `/api/v1/servers/${server}/analyses`, analysisBody);
      return { url: `/api/v1/servers/${server}/analyses/${a.id as string}?format=markdown` };
    },
  },
];

const gatewayRoutes: RouteCase[] = [
  {
    method: 'GET',
    route: '/api/v1/servers/:server/gateway',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/gateway' }),
  },
  {
    method: 'PUT',
    route: '/api/v1/servers/:server/environments/:environment/gateway',
    needs: 'admin',
    // A fresh server each time, so an allowed call is a real change (setting the mode in force is none).
    request: async () => ({
      url: `/api/v1/servers/${await freshServer()}/environments/staging/gateway`,
      body: { access: 'public' },
    }),
  },
];

/** The advisory database (import needs admin: it is shared by every org), findings and ignore rules. */
const vulnerabilityRoutes: RouteCase[] = [
  {
    method: 'POST',
    route: '/api/v1/advisories/import',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/advisories/import', body: { records: [] } }),
  },
  {
    method: 'GET',
    route: '/api/v1/advisories/status',
    needs: 'read',
    request: async () => ({ url: '/api/v1/advisories/status' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/:version/vulnerabilities',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0/vulnerabilities' }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/versions/:version/vulnerabilities/scan',
    needs: 'write',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0/vulnerabilities/scan' }),
  },
  {
    method: 'PUT',
    route: '/api/v1/servers/:server/versions/:version/sbom',
    needs: 'write',
    request: async () => {
      const server = await freshServer();
      await asAdmin('POST', `/api/v1/servers/${server}/versions`, {
        version: '1.0.0',
        packages: [
          {
            registryType: 'oci',
            identifier: 'ghcr.io/acme/app:1.0.0',
            version: '1.0.0',
            transport: { type: 'stdio' },
          },
        ],
      });
      return {
        url: `/api/v1/servers/${server}/versions/1.0.0/sbom`,
        body: { bomFormat: 'CycloneDX', specVersion: '1.5', components: [] },
      };
    },
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/versions/:version/patch',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0/patch', body: {} }),
  },
  {
    method: 'GET',
    route: '/api/v1/vulnerabilities',
    needs: 'read',
    request: async () => ({ url: '/api/v1/vulnerabilities?deployed=true' }),
  },
  {
    method: 'GET',
    route: '/api/v1/vulnerability-ignores',
    needs: 'read',
    request: async () => ({ url: '/api/v1/vulnerability-ignores' }),
  },
  {
    method: 'POST',
    route: '/api/v1/vulnerability-ignores',
    needs: 'write',
    request: async () => ({
      url: '/api/v1/vulnerability-ignores',
      body: { advisory: 'CVE-2024-21907', reason: 'not reachable' },
    }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/vulnerability-ignores/:id',
    needs: 'write',
    request: async () => {
      const rule = await asAdmin('POST', '/api/v1/vulnerability-ignores', {
        advisory: 'CVE-2024-1',
        reason: 'x',
      });
      return { url: `/api/v1/vulnerability-ignores/${rule.id as string}` };
    },
  },
];

const ROUTES: RouteCase[] = [
  ...vulnerabilityRoutes,
  ...variableRoutes,
  ...gatewayRoutes,
  ...analysisRoutes,
  ...deploymentRoutes,
  ...notifyRoutes,
  ...inhibitionRoutes,
  ...retentionRoutes,
  {
    method: 'GET',
    route: '/api/v1/servers',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers' }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers',
    needs: 'write',
    request: async () => ({ url: '/api/v1/servers', body: { slug: fresh() } }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix' }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/servers/:server',
    needs: 'write',
    request: async () => ({ url: '/api/v1/servers/matrix', body: { description: fresh() } }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/archive',
    needs: 'write',
    request: async () => ({ url: `/api/v1/servers/${await freshServer()}/archive` }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/unarchive',
    needs: 'write',
    request: async () => ({ url: `/api/v1/servers/${await freshServer()}/unarchive` }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions' }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/versions',
    needs: 'write',
    request: async () => ({ url: '/api/v1/servers/matrix/versions', body: { version: freshVersion() } }),
  },
  {
    method: 'POST',
    route: '/api/v1/servers/:server/versions/import',
    needs: 'write',
    request: async () => ({
      url: '/api/v1/servers/matrix/versions/import',
      body: { name: 'io.github.acme/matrix', description: 'Matrix', version: freshVersion() },
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/latest',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/latest?prerelease=true' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/next',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/next?bump=minor' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/lines',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/lines' }),
  },
  {
    method: 'PUT',
    route: '/api/v1/servers/:server/lines/:pattern',
    needs: 'write',
    request: async () => ({ url: `/api/v1/servers/${await freshServer()}/lines/1.x`, body: {} }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/servers/:server/lines/:pattern',
    needs: 'write',
    request: async () => {
      const server = await freshServer();
      await asAdmin('PUT', `/api/v1/servers/${server}/lines/1.x`, {});
      return { url: `/api/v1/servers/${server}/lines/1.x` };
    },
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/:version',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0' }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/servers/:server/versions/:version',
    needs: 'write',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0', body: { releaseNotes: fresh() } }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/:version/resolved-config',
    needs: 'deploy',
    request: async () => ({
      url: '/api/v1/servers/matrix/versions/1.0.0/resolved-config?environment=production',
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/:version/server.json',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0/server.json' }),
  },
  {
    method: 'GET',
    route: '/api/v1/ingest-keys',
    needs: 'write',
    request: async () => ({ url: '/api/v1/ingest-keys' }),
  },
  {
    method: 'POST',
    route: '/api/v1/ingest-keys',
    needs: 'write',
    request: async () => ({ url: '/api/v1/ingest-keys', body: { name: fresh(), server: 'matrix' } }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/ingest-keys/:id',
    needs: 'write',
    request: async () => ({
      url: `/api/v1/ingest-keys/${(await asAdmin('POST', '/api/v1/ingest-keys', { name: fresh() })).id as string}`,
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/metrics',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/metrics?window=1h' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/:version/summary',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0/summary?window=1h' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/compare',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/compare?baseline=1.0.0&candidate=1.1.0-rc.1' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/changes',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/changes?baseline=1.0.0&candidate=1.1.0-rc.1' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/release-health',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/release-health?environment=staging&window=24h' }),
  },
  {
    method: 'GET',
    route: '/api/v1/servers/:server/versions/:version/sessions',
    needs: 'read',
    request: async () => ({ url: '/api/v1/servers/matrix/versions/1.0.0/sessions?environment=staging' }),
  },
  {
    method: 'GET',
    route: '/api/v1/overview',
    needs: 'read',
    request: async () => ({ url: '/api/v1/overview?window=1h' }),
  },
  {
    method: 'GET',
    route: '/api/v1/registry',
    needs: 'read',
    request: async () => ({ url: '/api/v1/registry' }),
  },
  {
    method: 'GET',
    route: '/api/v1/registry/packages',
    needs: 'read',
    request: async () => ({ url: '/api/v1/registry/packages?registryType=npm&identifier=%40acme%2Fmatrix' }),
  },
  {
    method: 'GET',
    route: '/api/v1/packages',
    needs: 'read',
    request: async () => ({ url: '/api/v1/packages' }),
  },
  {
    method: 'GET',
    route: '/api/v1/packages/:registryType/:identifier',
    needs: 'read',
    request: async () => {
      await asAdmin('PUT', '/api/v1/packages/npm/%40acme%2Fmatrix', {});
      return { url: '/api/v1/packages/npm/%40acme%2Fmatrix' };
    },
  },
  {
    method: 'PUT',
    route: '/api/v1/packages/:registryType/:identifier',
    needs: 'write',
    request: async () => ({ url: `/api/v1/packages/npm/${fresh()}`, body: { allowed: '^1.0.0' } }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/packages/:registryType/:identifier',
    needs: 'write',
    request: async () => {
      const identifier = fresh();
      await asAdmin('PUT', `/api/v1/packages/npm/${identifier}`, {});
      return { url: `/api/v1/packages/npm/${identifier}` };
    },
  },
  {
    method: 'GET',
    route: '/api/v1/templates',
    needs: 'read',
    request: async () => ({ url: '/api/v1/templates' }),
  },
  {
    method: 'POST',
    route: '/api/v1/templates',
    needs: 'write',
    request: async () => ({ url: '/api/v1/templates', body: { slug: fresh() } }),
  },
  {
    method: 'GET',
    route: '/api/v1/templates/:template',
    needs: 'read',
    request: async () => ({ url: `/api/v1/templates/${await matrixTemplate()}` }),
  },
  {
    method: 'POST',
    route: '/api/v1/templates/:template/versions',
    needs: 'write',
    request: async () => ({
      url: `/api/v1/templates/${await matrixTemplate()}/versions`,
      body: { version: freshVersion() },
    }),
  },
  {
    method: 'GET',
    route: '/api/v1/templates/:template/versions/:version',
    needs: 'read',
    request: async () => ({ url: `/api/v1/templates/${await matrixTemplate()}/versions/1.0.0` }),
  },
  {
    method: 'PATCH',
    route: '/api/v1/templates/:template/versions/:version',
    needs: 'write',
    request: async () => {
      const template = await matrixTemplate();
      const version = freshVersion();
      await asAdmin('POST', `/api/v1/templates/${template}/versions`, { version });
      return {
        url: `/api/v1/templates/${template}/versions/${version}`,
        body: { status: 'release-candidate' },
      };
    },
  },
  {
    method: 'GET',
    route: '/api/v1/templates/:template/usage',
    needs: 'read',
    request: async () => ({ url: `/api/v1/templates/${await matrixTemplate()}/usage` }),
  },
  {
    method: 'GET',
    route: '/api/v1/mcp-registry',
    needs: 'read',
    request: async () => ({ url: '/api/v1/mcp-registry' }),
  },
  {
    method: 'PUT',
    route: '/api/v1/mcp-registry',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/mcp-registry', body: { public: false } }),
  },
  { method: 'GET', route: '/api/v1/me', needs: null, request: async () => ({ url: '/api/v1/me' }) },
  {
    method: 'POST',
    route: '/api/v1/session',
    needs: null,
    request: async () => ({ url: '/api/v1/session' }),
  },
  {
    method: 'GET',
    route: '/api/v1/session',
    needs: null,
    anonymous: true,
    request: async () => ({ url: '/api/v1/session' }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/session',
    needs: null,
    request: async () => ({ url: '/api/v1/session' }),
  },
  {
    method: 'GET',
    route: '/api/v1/tokens',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/tokens' }),
  },
  {
    method: 'POST',
    route: '/api/v1/tokens',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/tokens', body: { name: fresh(), permissions: ['read'] } }),
  },
  {
    method: 'GET',
    route: '/api/v1/tokens/:id',
    needs: 'admin',
    request: async () => ({ url: `/api/v1/tokens/${await tokenId()}` }),
  },
  {
    method: 'DELETE',
    route: '/api/v1/tokens/:id',
    needs: 'admin',
    request: async () => ({ url: `/api/v1/tokens/${await tokenId()}` }),
  },
  {
    method: 'POST',
    route: '/api/v1/orgs',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/orgs', body: { slug: fresh() } }),
  },
  { method: 'GET', route: '/api/v1/audit', needs: 'admin', request: async () => ({ url: '/api/v1/audit' }) },
  {
    method: 'GET',
    route: '/api/v1/audit/verify',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/audit/verify' }),
  },
  {
    method: 'GET',
    route: '/api/v1/access-log',
    needs: 'admin',
    request: async () => ({ url: '/api/v1/access-log' }),
  },
  ...healthCheckRoutes(),
  ...alertRouteCases(),
];

/** Alert rules and alerts: a fresh rule per call; one firing alert (no data, treated as alerting) shared. */
function alertRouteCases(): RouteCase[] {
  const rule = async () =>
    (
      await asAdmin('POST', '/api/v1/alert-rules', {
        name: fresh(),
        server: 'matrix',
        kind: 'threshold',
        metric: 'errorRate',
        threshold: 0.5,
        noDataState: 'Alerting',
      })
    ).id as string;
  let alert: Promise<string> | undefined;
  const firingAlert = () =>
    (alert ??= (async () => {
      const id = await rule();
      const result = await asAdmin('POST', `/api/v1/alert-rules/${id}/evaluate`);
      return ((result.alerts as { id: string }[])[0] as { id: string }).id;
    })());
  return [
    {
      method: 'GET',
      route: '/api/v1/alert-rules',
      needs: 'read',
      request: async () => ({ url: '/api/v1/alert-rules' }),
    },
    {
      method: 'POST',
      route: '/api/v1/alert-rules',
      needs: 'write',
      request: async () => ({
        url: '/api/v1/alert-rules',
        body: { name: fresh(), server: 'matrix', kind: 'absence', window: '10m' },
      }),
    },
    {
      method: 'GET',
      route: '/api/v1/alert-rules/:id',
      needs: 'read',
      request: async () => ({ url: `/api/v1/alert-rules/${await rule()}` }),
    },
    {
      method: 'PATCH',
      route: '/api/v1/alert-rules/:id',
      needs: 'write',
      request: async () => ({ url: `/api/v1/alert-rules/${await rule()}`, body: { severity: 'critical' } }),
    },
    {
      method: 'DELETE',
      route: '/api/v1/alert-rules/:id',
      needs: 'write',
      request: async () => ({ url: `/api/v1/alert-rules/${await rule()}` }),
    },
    {
      method: 'POST',
      route: '/api/v1/alert-rules/:id/evaluate',
      needs: 'write',
      request: async () => ({ url: `/api/v1/alert-rules/${await rule()}/evaluate` }),
    },
    {
      method: 'GET',
      route: '/api/v1/alerts',
      needs: 'read',
      request: async () => ({ url: '/api/v1/alerts?state=firing,pending' }),
    },
    {
      method: 'GET',
      route: '/api/v1/alerts/history',
      needs: 'read',
      request: async () => ({ url: '/api/v1/alerts/history?server=matrix&version=1.0.0' }),
    },
    {
      method: 'GET',
      route: '/api/v1/alerts/:id',
      needs: 'read',
      request: async () => ({ url: `/api/v1/alerts/${await firingAlert()}` }),
    },
    {
      method: 'POST',
      route: '/api/v1/alerts/:id/acknowledge',
      needs: 'write',
      request: async () => ({
        url: `/api/v1/alerts/${await firingAlert()}/acknowledge`,
        body: { comment: 'on it' },
      }),
    },
  ];
}

/** Health checks: a fresh startup check per call (no scheduler), pointing at a port nothing listens on. */
function healthCheckRoutes(): RouteCase[] {
  const base = '/api/v1/servers/matrix/health-checks';
  const check = async () =>
    (
      await asAdmin('POST', base, {
        name: fresh(),
        kind: 'http',
        url: 'http://127.0.0.1:1/health',
        phase: 'startup',
        timeout: '1s',
      })
    ).id as string;
  return [
    {
      method: 'GET',
      route: '/api/v1/servers/:server/health',
      needs: 'read',
      request: async () => ({ url: '/api/v1/servers/matrix/health?window=1h' }),
    },
    {
      method: 'GET',
      route: `/api/v1/servers/:server/health-checks`,
      needs: 'read',
      request: async () => ({ url: base }),
    },
    {
      method: 'POST',
      route: '/api/v1/servers/:server/health-checks',
      needs: 'write',
      request: async () => ({
        url: base,
        body: { name: fresh(), kind: 'mcp', url: 'http://127.0.0.1:1/mcp', phase: 'startup' },
      }),
    },
    {
      method: 'GET',
      route: '/api/v1/servers/:server/health-checks/:id',
      needs: 'read',
      request: async () => ({ url: `${base}/${await check()}` }),
    },
    {
      method: 'PATCH',
      route: '/api/v1/servers/:server/health-checks/:id',
      needs: 'write',
      request: async () => ({ url: `${base}/${await check()}`, body: { requiredPasses: 2 } }),
    },
    {
      method: 'DELETE',
      route: '/api/v1/servers/:server/health-checks/:id',
      needs: 'write',
      request: async () => ({ url: `${base}/${await check()}` }),
    },
    {
      method: 'GET',
      route: '/api/v1/servers/:server/health-checks/:id/results',
      needs: 'read',
      request: async () => ({ url: `${base}/${await check()}/results?window=1h` }),
    },
    {
      method: 'POST',
      route: '/api/v1/servers/:server/health-checks/:id/run',
      needs: 'write',
      request: async () => ({ url: `${base}/${await check()}/run` }),
    },
    {
      method: 'GET',
      route: '/api/v1/servers/:server/versions/:version/tools',
      needs: 'read',
      request: async () => {
        await saveToolSnapshot(stores.db, api.org.id, {
          server: 'matrix',
          environment: '',
          version: '1.0.0',
          checkId: null,
          protocolVersion: '2025-06-18',
          serverInfo: null,
          tools: [{ name: 'echo', inputSchema: { type: 'object' } }],
          toolsHash: 'h',
          observedAt: new Date().toISOString(),
        });
        return { url: '/api/v1/servers/matrix/versions/1.0.0/tools' };
      },
    },
  ];
}

/** What each permission set may do, independent of the code under test. */
const GRANTS: Record<string, Permission[]> = {
  read: ['read'],
  write: ['read', 'write'],
  deploy: ['read', 'deploy'],
  // Connecting MCP clients through the gateway only: no route of /api/v1 needs it, and it reads nothing.
  connect: ['connect'],
  admin: ['read', 'write', 'deploy', 'connect', 'admin'],
};

const tokens: Record<string, string> = {};
const registered: string[] = [];

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  for (const permission of Object.keys(GRANTS))
    tokens[permission] = await api.token([permission as Permission]);
  await asAdmin('POST', '/api/v1/servers', { slug: 'matrix' });
  await asAdmin('POST', '/api/v1/servers/matrix/versions', { version: '1.0.0' });
  await asAdmin('POST', '/api/v1/servers/matrix/versions', { version: '1.1.0-rc.1' });
  for (const scope of SCOPES)
    await asAdmin('PUT', `${scope.url()}/secrets/MATRIX_SECRET`, { value: 's3cret' });
});

afterAll(async () => {
  await api?.app.close();
  await stores?.close();
});

describe('every route × every permission', () => {
  it('covers every /api/v1 route in the table', async () => {
    // The OpenAPI document lists every route with its method; hidden ones are not under /api/v1.
    const res = await api.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    const doc = res.json() as { paths: Record<string, Record<string, unknown>> };
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const method of Object.keys(methods))
        registered.push(`${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`);
    }
    const table = ROUTES.map((r) => `${r.method} ${r.route}`);
    expect(registered.filter((r) => r.includes('/api/v1/')).sort()).toEqual(table.sort());
  });

  for (const route of ROUTES) {
    describe(`${route.method} ${route.route}`, () => {
      it(
        route.anonymous
          ? 'answers that nobody is signed in without a token'
          : 'answers 401 problem+json without a token',
        async () => {
          const { url, body } = await route.request();
          const res = await api.app.inject({ method: route.method, url, payload: body as object });
          if (route.anonymous) {
            expect(res.statusCode).toBe(200);
            expect(res.json()).toEqual({ authenticated: false });
            return;
          }
          expect(res.statusCode).toBe(401);
          expect(res.headers['content-type']).toContain('application/problem+json');
          expect(res.json()).toMatchObject({ status: 401, code: 'missing-token' });
        },
      );

      it('answers 401 with a token that does not exist', async () => {
        const { url, body } = await route.request();
        const res = await api.app.inject({
          method: route.method,
          url,
          payload: body as object,
          headers: bearer('pyl_nope'),
        });
        expect(res.statusCode).toBe(401);
        expect(res.json()).toMatchObject({ code: 'invalid-token' });
      });

      for (const [permission, grants] of Object.entries(GRANTS)) {
        const allowed = route.needs === null || grants.includes(route.needs);
        it(`${allowed ? 'allows' : 'refuses (403)'} a ${permission} token`, async () => {
          const { url, body } = await route.request();
          const res = await api.app.inject({
            method: route.method,
            url,
            payload: body as object,
            headers: bearer(tokens[permission] as string),
          });
          if (allowed) {
            expect(res.statusCode, res.body).toBeGreaterThanOrEqual(200);
            expect(res.statusCode, res.body).toBeLessThan(300);
          } else {
            expect(res.statusCode, res.body).toBe(403);
            expect(res.json()).toMatchObject({ code: 'missing-permission' });
            expect(res.json().detail).toContain(route.needs);
          }
        });
      }
    });
  }
});

/**
 * Every table's rows as one digest per table; `last_used_at` (bumped by authenticating) left out.
 * Table names come from the catalog, never from input.
 */
async function snapshot(): Promise<Record<string, string>> {
  const tables = await stores.db.query<{ name: string }>(
    `SELECT table_name AS name FROM information_schema.tables
     WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`,
  );
  const digests: Record<string, string> = {};
  for (const { name } of tables) {
    const [row] = await stores.db.query<{ digest: string | null }>(
      `SELECT md5(string_agg(r.j, ',' ORDER BY r.j)) AS digest
       FROM (SELECT (to_jsonb(t) - 'last_used_at')::text AS j FROM "${name.replace(/"/g, '""')}" t) r`,
    );
    digests[name] = row?.digest ?? '';
  }
  return digests;
}

describe('unknown body properties', () => {
  // ROUTES holds every /api/v1 route (the test above fails otherwise), so a route added later without
  // a body schema is walked here too.
  const changing = ROUTES.filter((r) => r.method !== 'GET');
  const bodyless: string[] = [];

  for (const route of changing) {
    it(`${route.method} ${route.route} refuses {"unexpected":1} with 400 and changes nothing`, async () => {
      const { url, body } = await route.request();
      if (body === undefined) bodyless.push(`${route.method} ${route.route}`);
      const before = await snapshot();
      const res = await api.app.inject({
        method: route.method,
        url,
        payload: { ...(body as object | undefined), unexpected: 1 },
        headers: bearer(BOOTSTRAP_TOKEN),
      });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      const problem = res.json() as { status: number; code: string; errors?: unknown[] };
      expect(problem.status).toBe(400);
      // Schema validation (invalid-request), or the route's own check of a document (invalid-server-json).
      expect(problem.code).toMatch(/^invalid-/);
      expect(JSON.stringify(problem.errors), 'the problem names the property').toContain('unexpected');
      expect(res.headers['set-cookie'], 'no session was created').toBeUndefined();
      expect(await snapshot()).toEqual(before);
      if (route.route.endsWith('/health-checks/:id/run')) {
        const results = await api.app.inject({
          method: 'GET',
          url: `${url.replace(/\/run$/, '/results')}?window=1h`,
          headers: bearer(BOOTSTRAP_TOKEN),
        });
        expect(results.json().results, 'the check did not run').toEqual([]);
      }
    });
  }

  it('walked the action routes that take no body', () => {
    for (const route of [
      'POST /api/v1/servers/:server/archive',
      'POST /api/v1/servers/:server/unarchive',
      'POST /api/v1/channels/:id/rotate-secret',
      'POST /api/v1/channels/:id/test',
      'POST /api/v1/servers/:server/health-checks/:id/run',
      'POST /api/v1/alert-rules/:id/evaluate',
      'POST /api/v1/session',
      'POST /api/v1/deliveries/:id/redeliver',
    ])
      expect(bodyless).toContain(route);
  });

  for (const route of changing) {
    it(`${route.method} ${route.route} still acts on an empty body ({}) where it takes none`, async () => {
      const { url, body } = await route.request();
      if (body !== undefined) return;
      const res = await api.app.inject({
        method: route.method,
        url,
        payload: {},
        headers: bearer(BOOTSTRAP_TOKEN),
      });
      expect(res.statusCode, res.body).toBeGreaterThanOrEqual(200);
      expect(res.statusCode, res.body).toBeLessThan(300);
    });
  }
});

describe('another org', () => {
  let otherAdmin: string;
  let defaultTokenId: string;

  beforeAll(async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/api/v1/orgs',
      headers: bearer(BOOTSTRAP_TOKEN),
      payload: { slug: 'other-org', name: 'Other' },
    });
    expect(res.statusCode).toBe(201);
    otherAdmin = (res.json() as { token: string }).token;
    defaultTokenId = await tokenId();
  });

  it("sees another org's token as not found (404), for reads and revokes alike", async () => {
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await api.app.inject({
        method,
        url: `/api/v1/tokens/${defaultTokenId}`,
        headers: bearer(otherAdmin),
      });
      expect(res.statusCode).toBe(404);
      expect(res.json()).toMatchObject({ code: 'token-not-found' });
    }
    const still = await api.app.inject({
      method: 'GET',
      url: `/api/v1/tokens/${defaultTokenId}`,
      headers: bearer(BOOTSTRAP_TOKEN),
    });
    expect(still.json()).toMatchObject({ active: true, revokedAt: null });
  });

  it('may not change the advisory database every org shares (403), and imports nothing', async () => {
    const before = await api.app.inject({
      method: 'GET',
      url: '/api/v1/advisories/status',
      headers: bearer(otherAdmin),
    });
    const res = await api.app.inject({
      method: 'POST',
      url: '/api/v1/advisories/import',
      headers: bearer(otherAdmin),
      payload: {
        records: [{ schema_version: '1.6.0', id: 'GHSA-xxxx-xxxx-xxxx', modified: '2026-01-01T00:00:00Z' }],
      },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'advisories-operator-only' });
    expect(res.json().detail).toMatch(/only an admin of @default/);
    const after = await api.app.inject({
      method: 'GET',
      url: '/api/v1/advisories/status',
      headers: bearer(otherAdmin),
    });
    expect(after.json()).toEqual(before.json());
  });

  it('lists only its own tokens and audit events', async () => {
    const list = await api.app.inject({ method: 'GET', url: '/api/v1/tokens', headers: bearer(otherAdmin) });
    const names = (list.json() as { tokens: { name: string }[] }).tokens.map((t) => t.name);
    expect(names).toEqual(['admin']);
    const audit = await api.app.inject({
      method: 'GET',
      url: '/api/v1/audit?limit=500',
      headers: bearer(otherAdmin),
    });
    const events = (audit.json() as { events: { target: { id: string | null } }[] }).events;
    expect(events.length).toBeGreaterThan(0);
    expect(events.some((e) => e.target.id === defaultTokenId)).toBe(false);
  });

  it('may not create orgs: only admins of @default operate the instance', async () => {
    const res = await api.app.inject({
      method: 'POST',
      url: '/api/v1/orgs',
      headers: bearer(otherAdmin),
      payload: { slug: 'nested-org' },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'not-instance-admin' });
  });
});
