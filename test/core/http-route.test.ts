import { describe, expect, it } from 'vitest';
import { AppError } from '#core/errors.ts';
import {
  DEFAULT_BACKEND_PORT,
  DEFAULT_PARENT_REF,
  dnsLabel,
  renderHttpRoute,
  routeName,
  serviceName,
  type HttpRouteInput,
} from '#core/gateway/http-route.ts';

const RFC1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const RFC1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

const base: HttpRouteInput = {
  org: 'acme',
  server: 'weather',
  environment: 'production',
  weights: [
    { version: '1.0.0', weight: 70 },
    { version: '1.1.0', weight: 30 },
  ],
};

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(AppError);
    return error as AppError;
  }
  throw new Error('expected a refusal');
}

describe('renderHttpRoute', () => {
  it('renders a canary split as a gateway.networking.k8s.io/v1 HTTPRoute with weighted backendRefs', () => {
    expect(renderHttpRoute({ ...base, deployment: 'd-1' })).toEqual({
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'HTTPRoute',
      metadata: {
        name: 'weather-production',
        labels: { 'app.kubernetes.io/managed-by': 'pylee' },
        annotations: {
          'pylee.dev/org': 'acme',
          'pylee.dev/server': 'weather',
          'pylee.dev/environment': 'production',
          'pylee.dev/weights-source': 'pylee-desired-state',
          'pylee.dev/weights': '1.0.0=70,1.1.0=30',
          'pylee.dev/deployment': 'd-1',
        },
      },
      spec: {
        parentRefs: [{ name: DEFAULT_PARENT_REF }],
        rules: [
          {
            backendRefs: [
              { name: 'weather-v1-0-0', port: DEFAULT_BACKEND_PORT, weight: 70 },
              { name: 'weather-v1-1-0', port: DEFAULT_BACKEND_PORT, weight: 30 },
            ],
          },
        ],
      },
    });
  });

  it('takes namespace, a parentRef in another namespace, port and hostname', () => {
    const route = renderHttpRoute({
      ...base,
      namespace: 'mcp',
      parentRef: 'infra/prod-gateway',
      port: 8080,
      hostname: 'weather.example.com',
    });
    expect(route.metadata.namespace).toBe('mcp');
    expect(route.spec.parentRefs).toEqual([{ namespace: 'infra', name: 'prod-gateway' }]);
    expect(route.spec.hostnames).toEqual(['weather.example.com']);
    expect(route.spec.rules[0]?.backendRefs.map((b) => b.port)).toEqual([8080, 8080]);
    expect(renderHttpRoute({ ...base, parentRef: 'shared' }).spec.parentRefs).toEqual([{ name: 'shared' }]);
  });

  it('omits versions with weight 0 and renders no backendRefs when nothing has weight', () => {
    const promoted = renderHttpRoute({
      ...base,
      weights: [
        { version: '1.0.0', weight: 100 },
        { version: '1.1.0', weight: 0 },
      ],
    });
    expect(promoted.spec.rules[0]?.backendRefs).toEqual([{ name: 'weather-v1-0-0', port: 80, weight: 100 }]);
    expect(promoted.metadata.annotations['pylee.dev/weights']).toBe('1.0.0=100');
    expect(renderHttpRoute({ ...base, weights: [] }).spec.rules).toEqual([{ backendRefs: [] }]);
    expect(
      renderHttpRoute({ ...base, weights: [{ version: '1.0.0', weight: 0 }] }).spec.rules[0]?.backendRefs,
    ).toEqual([]);
  });

  it('orders backendRefs by semver whatever the order of the weights', () => {
    const weights = [
      { version: '1.10.0', weight: 40 },
      { version: '1.2.0', weight: 50 },
      { version: '1.10.0-rc.1', weight: 10 },
    ];
    const names = (w: typeof weights) =>
      renderHttpRoute({ ...base, weights: w }).spec.rules[0]?.backendRefs.map((b) => [b.name, b.weight]);
    expect(names(weights)).toEqual([
      ['weather-v1-2-0', 50],
      ['weather-v1-10-0-rc-1', 10],
      ['weather-v1-10-0', 40],
    ]);
    expect(names([...weights].reverse())).toEqual(names(weights));
  });

  it('names Services <server>-v<version> with dots and + as dashes, lower case, as RFC 1035 labels', () => {
    expect(serviceName('weather', '1.4.0')).toBe('weather-v1-4-0');
    expect(serviceName('weather', '2.0.0-RC.1+build.7')).toBe('weather-v2-0-0-rc-1-build-7');
    // A Service name starts with a letter.
    expect(serviceName('1password', '1.0.0')).toBe('svc-1password-v1-0-0');
    for (const name of [serviceName('weather', '2.0.0-RC.1+build.7'), serviceName('1password', '1.0.0')])
      expect(name).toMatch(RFC1035_LABEL);
  });

  it('shortens long names to 63 characters, deterministically, keeping them apart by a hash', () => {
    const server = 'a'.repeat(60);
    const one = serviceName(server, '1.0.0');
    const two = serviceName(server, '1.0.1');
    expect(one).toHaveLength(63);
    expect(one).toMatch(RFC1035_LABEL);
    expect(one).not.toBe(two);
    expect(serviceName(server, '1.0.0')).toBe(one);
    expect(one.startsWith('a'.repeat(54))).toBe(true);

    const route = routeName('b'.repeat(64), 'production');
    expect(route.length).toBeLessThanOrEqual(63);
    expect(route).toMatch(RFC1123_LABEL);
    expect(routeName('b'.repeat(64), 'staging')).not.toBe(route);
    expect(dnsLabel('--Weird..Name++')).toBe('weird--name');
    expect(dnsLabel('x'.repeat(53) + '-' + 'y'.repeat(20))).toMatch(/^x{53}-[0-9a-f]{8}$/);
  });

  it('refuses two versions that would be the same Service', () => {
    const error = refusal(() =>
      renderHttpRoute({
        ...base,
        weights: [
          { version: '1.0.0-rc.1', weight: 50 },
          { version: '1.0.0-RC.1', weight: 50 },
        ],
      }),
    );
    expect(error).toMatchObject({ status: 409, code: 'backend-name-collision' });
    expect(error.message).toContain('weather-v1-0-0-rc-1');
  });

  it('refuses options and weights Kubernetes would refuse, naming them', () => {
    const cases: [Partial<HttpRouteInput>, string][] = [
      [{ namespace: 'Prod' }, 'invalid-namespace'],
      [{ namespace: 'x'.repeat(64) }, 'invalid-namespace'],
      [{ parentRef: 'a/b/c' }, 'invalid-parent-ref'],
      [{ parentRef: 'Gateway' }, 'invalid-parent-ref'],
      [{ parentRef: 'infra/' }, 'invalid-parent-ref'],
      [{ port: 0 }, 'invalid-port'],
      [{ port: 65_536 }, 'invalid-port'],
      [{ hostname: 'mcp.example.com:443' }, 'invalid-hostname'],
      [{ hostname: 'MCP.example.com' }, 'invalid-hostname'],
      [{ weights: [{ version: '1.0.0', weight: 1.5 }] }, 'invalid-weight'],
      [{ weights: [{ version: '1.0.0', weight: 1_000_001 }] }, 'invalid-weight'],
      [{ weights: [{ version: '1.0.0', weight: -1 }] }, 'invalid-weight'],
    ];
    for (const [input, code] of cases) {
      expect(
        refusal(() => renderHttpRoute({ ...base, ...input })),
        JSON.stringify(input),
      ).toMatchObject({
        status: 400,
        code,
      });
    }
    expect(renderHttpRoute({ ...base, hostname: '*.example.com' }).spec.hostnames).toEqual(['*.example.com']);
  });
});
