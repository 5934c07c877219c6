import { describe, expect, it } from 'vitest';
import {
  catalogKey,
  checkRange,
  inVersions,
  standingOf,
  type CatalogRow,
} from '#core/registry/package-catalog.ts';

describe('inVersions', () => {
  it('npm: a semver range, pre-releases included', () => {
    expect(inVersions('npm', '^2.0.0', '2.4.1')).toBe(true);
    expect(inVersions('npm', '^2.0.0', '1.9.0')).toBe(false);
    expect(inVersions('npm', '^2.0.0', '3.0.0')).toBe(false);
    expect(inVersions('npm', '>=1.4 <2 || ^3', '3.1.0')).toBe(true);
    expect(inVersions('npm', '2.0.x', '2.0.3')).toBe(true);
    expect(inVersions('npm', '^2.0.0', '2.1.0-rc.1')).toBe(true);
    expect(inVersions('npm', ' * ', '0.0.1')).toBe(true);
  });

  it('pypi: a PEP 440 specifier set', () => {
    expect(inVersions('pypi', '>=2.31,<3', '2.31.0')).toBe(true);
    expect(inVersions('pypi', '>=2.31,<3', '2.19.1')).toBe(false);
    expect(inVersions('pypi', '~=2.31.0', '2.31.5')).toBe(true);
    expect(inVersions('pypi', '~=2.31.0', '2.32.0')).toBe(false);
    expect(inVersions('pypi', '==2.*', '2.0')).toBe(true);
    // Pre-releases count, but (PEP 440) `<3` excludes the pre-releases of 3 itself.
    expect(inVersions('pypi', '<4', '3.0.0rc1')).toBe(true);
    expect(inVersions('pypi', '<3', '3.0.0rc1')).toBe(false);
    expect(inVersions('pypi', '!=2.30.0', '2.30.0')).toBe(false);
  });

  it('oci, homebrew, nuget: exact versions, comma-separated, * a wildcard', () => {
    for (const type of ['oci', 'homebrew', 'nuget']) {
      expect(inVersions(type, '1.4.*, 1.5.0', '1.4.12')).toBe(true);
      expect(inVersions(type, '1.4.*, 1.5.0', '1.5.0')).toBe(true);
      expect(inVersions(type, '1.4.*, 1.5.0', '1.5.1')).toBe(false);
      // A dot is a dot, not any character.
      expect(inVersions(type, '1.4.0', '1x4x0')).toBe(false);
      expect(inVersions(type, '*', 'latest')).toBe(true);
    }
    expect(inVersions('oci', 'v1.*-alpine', 'v1.2-alpine')).toBe(true);
    expect(inVersions('nuget', '13.0.3', '13.0.3+build.1')).toBe(false);
  });
});

describe('checkRange', () => {
  it('accepts each ecosystem’s syntax, trimmed', () => {
    expect(checkRange('npm', 'allowed', ' ^2.1.0 ')).toBe('^2.1.0');
    expect(checkRange('pypi', 'allowed', '>=2.31,<3')).toBe('>=2.31,<3');
    expect(checkRange('oci', 'allowed', '1.4.*, sha256:abc')).toBe('1.4.*, sha256:abc');
    expect(checkRange('pypi', 'allowed', '*')).toBe('*');
  });

  it('refuses what the ecosystem cannot parse, naming the field with an example', () => {
    expect(() => checkRange('npm', 'allowed', 'latest')).toThrow(
      /allowed "latest".*semver range, e.g. \^2.1.0/,
    );
    expect(() => checkRange('pypi', 'deprecations[1].versions', '2.0')).toThrow(
      /deprecations\[1\]\.versions "2.0" is not valid for pypi: use a PEP 440 specifier set, e.g. >=2.31,<3/,
    );
    expect(() => checkRange('oci', 'allowed', '1.4 1.5')).toThrow(/comma-separated/);
    expect(() => checkRange('nuget', 'allowed', '1.0,,2.0')).toThrow(/nuget/);
    expect(() => checkRange('npm', 'allowed', '  ')).toThrow(/allowed/);
  });
});

describe('catalogKey and standingOf', () => {
  it('compares PyPI names by PEP 503 and NuGet names case-insensitively, others exactly', () => {
    expect(catalogKey('pypi', 'Zope.Interface')).toBe(catalogKey('pypi', 'zope_interface'));
    expect(catalogKey('nuget', 'Newtonsoft.Json')).toBe('newtonsoft.json');
    expect(catalogKey('npm', '@Acme/SDK')).not.toBe(catalogKey('npm', '@acme/sdk'));
    expect(catalogKey('oci', 'ghcr.io/Acme/img')).toBe('ghcr.io/Acme/img');
  });

  it('says whether a version is allowed and which deprecation covers it', () => {
    const entry = {
      registry_type: 'npm',
      allowed: '>=2.0.0',
      deprecations: [{ versions: '2.0.x', message: 'slow', replacement: '2.1.0' }],
    } as CatalogRow;
    expect(standingOf(entry, '2.0.4')).toEqual({ allowed: true, deprecation: entry.deprecations[0] });
    expect(standingOf(entry, '1.0.0')).toEqual({ allowed: false, deprecation: null });
    expect(standingOf({ ...entry, allowed: null }, '1.0.0').allowed).toBe(true);
    expect(standingOf(undefined, '0.0.1')).toEqual({ allowed: true, deprecation: null });
  });
});
