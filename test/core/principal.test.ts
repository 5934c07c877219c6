import { describe, expect, it } from 'vitest';
import {
  assertConnect,
  assertPermission,
  assertServerAccess,
  hasPermission,
  normalisePermissions,
  PERMISSIONS,
  type Permission,
  type Principal,
} from '#core/auth/principal.ts';
import { ForbiddenError, NotFoundError } from '#core/errors.ts';

const principal = (
  permissions: Permission[],
  servers: string[] | null = null,
  environments?: string[],
): Principal => ({
  orgId: 'o',
  orgSlug: 'acme',
  tokenId: 't',
  tokenName: 'ci',
  permissions,
  servers,
  ...(environments ? { environments } : {}),
});

describe('permissions', () => {
  const expected: Record<Permission, Permission[]> = {
    read: ['read'],
    write: ['read', 'write'],
    deploy: ['read', 'deploy'],
    connect: ['connect'],
    admin: ['read', 'write', 'deploy', 'connect', 'admin'],
  };
  for (const held of PERMISSIONS) {
    it(`a ${held} token holds exactly ${expected[held].join(', ')}`, () => {
      expect(PERMISSIONS.filter((p) => hasPermission(principal([held]), p))).toEqual(expected[held]);
    });
  }

  it('refuses a missing permission with 403 naming it and the org', () => {
    expect(() => assertPermission(principal(['read']), 'deploy')).toThrow(ForbiddenError);
    expect(() => assertPermission(principal(['read']), 'deploy')).toThrow(
      /lacks the deploy permission.*@acme/,
    );
    expect(() => assertPermission(principal(['write', 'deploy']), 'deploy')).not.toThrow();
  });

  it('hides servers outside a limited token as not found', () => {
    expect(() => assertServerAccess(principal(['read'], ['weather']), 'search')).toThrow(NotFoundError);
    expect(() => assertServerAccess(principal(['read'], ['weather']), 'weather')).not.toThrow();
    expect(() => assertServerAccess(principal(['read']), 'anything')).not.toThrow();
  });

  it('lets a connect token through the gateway to its servers and environments only', () => {
    expect(() => assertConnect(principal(['connect']), 'weather', 'production')).not.toThrow();
    expect(() => assertConnect(principal(['admin']), 'weather', 'production')).not.toThrow();
    for (const held of ['read', 'write', 'deploy'] as const) {
      expect(() => assertConnect(principal([held]), 'weather', 'production')).toThrow(
        expect.objectContaining({ status: 403, code: 'missing-permission' }),
      );
    }
    // Another server is hidden, whatever else is missing.
    expect(() => assertConnect(principal(['read'], ['search']), 'weather', 'production')).toThrow(
      NotFoundError,
    );
    const staging = principal(['connect'], ['weather'], ['staging']);
    expect(() => assertConnect(staging, 'weather', 'staging')).not.toThrow();
    expect(() => assertConnect(staging, 'weather', 'production')).toThrow(
      expect.objectContaining({ status: 403, code: 'environment-not-permitted' }),
    );
    expect(() => assertConnect(staging, 'weather', 'production')).toThrow(
      /may connect only to staging, not production/,
    );
    // The environment list limits admins' tokens too, as it does for deploys.
    expect(() => assertConnect(principal(['admin'], null, ['staging']), 'weather', 'production')).toThrow(
      ForbiddenError,
    );
  });

  it('normalises permission lists', () => {
    expect(normalisePermissions(['write', 'read', 'write'])).toEqual(['read', 'write']);
    expect(normalisePermissions(['read', 'admin'])).toEqual(['admin']);
    expect(normalisePermissions(['connect', 'read'])).toEqual(['read', 'connect']);
  });
});
