import { describe, expect, it } from 'vitest';
import {
  assertPermission,
  assertServerAccess,
  hasPermission,
  normalisePermissions,
  PERMISSIONS,
  type Permission,
  type Principal,
} from '#core/auth/principal.ts';
import { ForbiddenError, NotFoundError } from '#core/errors.ts';

const principal = (permissions: Permission[], servers: string[] | null = null): Principal => ({
  orgId: 'o',
  orgSlug: 'acme',
  tokenId: 't',
  tokenName: 'ci',
  permissions,
  servers,
});

describe('permissions', () => {
  const expected: Record<Permission, Permission[]> = {
    read: ['read'],
    write: ['read', 'write'],
    deploy: ['read', 'deploy'],
    admin: ['read', 'write', 'deploy', 'admin'],
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

  it('normalises permission lists', () => {
    expect(normalisePermissions(['write', 'read', 'write'])).toEqual(['read', 'write']);
    expect(normalisePermissions(['read', 'admin'])).toEqual(['admin']);
  });
});
