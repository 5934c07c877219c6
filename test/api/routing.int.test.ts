import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, type TestApi } from '#test/helpers/api.ts';
import { openTestStores } from '#test/helpers/stores.ts';

// GET …/environments/{env}/routing: the desired weights as they are, and as a Gateway API HTTPRoute.

interface HttpRoute {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations: Record<string, string> };
  spec: {
    parentRefs: { name: string; namespace?: string }[];
    hostnames?: string[];
    rules: { backendRefs: { name: string; port: number; weight: number }[] }[];
  };
}

let stores: Awaited<ReturnType<typeof openTestStores>>;
let api: TestApi;
beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
});
afterAll(async () => {
  await api?.app.close();
  await stores?.close();
});

async function call(method: 'GET' | 'POST', url: string, payload?: object, token = BOOTSTRAP_TOKEN) {
  return api.app.inject({
    method,
    url: `/api/v1${url}`,
    headers: bearer(token),
    ...(payload ? { payload } : {}),
  });
}
async function ok<T>(method: 'GET' | 'POST', url: string, payload?: object, token?: string): Promise<T> {
  const res = await call(method, url, payload, token);
  expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
  return res.json() as T;
}
const routing = '/servers/weather/environments/canary/routing';

describe('routing API', () => {
  it('renders a canary at 30 % as backendRefs 70/30, and after a rollback just the stable one', async () => {
    await ok('POST', '/servers', { slug: 'weather' });
    for (const version of ['1.0.0', '1.1.0'])
      await ok('POST', '/servers/weather/versions', { version, status: 'stable' });
    await ok('POST', '/servers/weather/deployments', { version: '1.0.0', environment: 'canary' });
    const canary = await ok<{ id: string; weight: number }>('POST', '/servers/weather/deployments', {
      version: '1.1.0',
      environment: 'canary',
      strategy: 'canary',
      steps: [{ weight: 30, pause: { approval: true } }, { weight: 100 }],
    });
    expect(canary.weight).toBe(30);

    const reader = await api.token(['read']);
    expect(await ok('GET', routing, undefined, reader)).toEqual({
      environment: 'canary',
      weights: [
        { version: '1.0.0', weight: 70 },
        { version: '1.1.0', weight: 30 },
      ],
    });
    const res = await call(
      'GET',
      `${routing}?format=gateway-api&namespace=mcp&parentRef=infra/prod-gateway&port=8080&hostname=weather.example.com`,
      undefined,
      reader,
    );
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toContain('application/json');
    const route = res.json() as HttpRoute;
    expect(route).toMatchObject({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: {
        name: 'weather-canary',
        namespace: 'mcp',
        annotations: {
          'pylee.dev/org': 'default',
          'pylee.dev/server': 'weather',
          'pylee.dev/environment': 'canary',
          'pylee.dev/deployment': canary.id,
        },
      },
      spec: {
        parentRefs: [{ namespace: 'infra', name: 'prod-gateway' }],
        hostnames: ['weather.example.com'],
      },
    });
    expect(route.spec.rules).toEqual([
      {
        backendRefs: [
          { name: 'weather-v1-0-0', port: 8080, weight: 70 },
          { name: 'weather-v1-1-0', port: 8080, weight: 30 },
        ],
      },
    ]);

    await ok('POST', '/servers/weather/rollback', { environment: 'canary' });
    const after = await ok<HttpRoute>('GET', `${routing}?format=gateway-api`);
    expect(after.spec.parentRefs).toEqual([{ name: 'pylee-gateway' }]);
    expect(after.spec.rules).toEqual([{ backendRefs: [{ name: 'weather-v1-0-0', port: 80, weight: 100 }] }]);
    expect(after.metadata.annotations['pylee.dev/deployment']).toBeUndefined();
    expect(await ok('GET', `${routing}?format=weights`)).toEqual({
      environment: 'canary',
      weights: [{ version: '1.0.0', weight: 100 }],
    });
  });

  it('answers 409 for an environment nothing runs in, and the empty weights as they are', async () => {
    const res = await call('GET', '/servers/weather/environments/staging/routing?format=gateway-api');
    expect(res.statusCode, res.body).toBe(409);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json()).toMatchObject({
      code: 'nothing-running',
      detail: expect.stringContaining('nothing runs in staging yet'),
    });
    expect(await ok('GET', '/servers/weather/environments/staging/routing')).toEqual({
      environment: 'staging',
      weights: [],
    });
  });

  it('refuses unknown query properties, gateway-api options with format=weights, and bad options', async () => {
    const cases: [string, number, string][] = [
      [`${routing}?weight=5`, 400, 'invalid-request'],
      [`${routing}?format=yaml`, 400, 'invalid-request'],
      [`${routing}?port=0&format=gateway-api`, 400, 'invalid-request'],
      [`${routing}?namespace=mcp`, 400, 'invalid-routing-query'],
      [`${routing}?format=gateway-api&namespace=Prod`, 400, 'invalid-namespace'],
      [`${routing}?format=gateway-api&hostname=10.0.0.1:80`, 400, 'invalid-hostname'],
      [`${routing}?format=gateway-api&parentRef=a/b/c`, 400, 'invalid-parent-ref'],
      ['/servers/weather/environments/nope/routing', 404, 'environment-not-found'],
      ['/servers/nope/environments/canary/routing', 404, 'server-not-found'],
    ];
    for (const [url, status, code] of cases) {
      const res = await call('GET', url);
      expect(res.statusCode, `${url}: ${res.body}`).toBe(status);
      expect((res.json() as { code: string }).code, url).toBe(code);
    }
    const unauthenticated = await api.app.inject({ method: 'GET', url: `/api/v1${routing}` });
    expect(unauthenticated.statusCode).toBe(401);
  });
});
