import { describe, expect, it } from 'vitest';
import { diffVersions, versionDistance, type ChangeRow, type VersionSide } from '#core/changes/diff.ts';
import { diffResolved, type ResolvedEntry } from '#core/changes/resolved.ts';
import { agoText, summarizeChanges } from '#core/changes/summary.ts';

const NOW = Date.parse('2026-12-02T12:00:00Z');
const hoursAgo = (h: number) => new Date(NOW - h * 3_600_000).toISOString();

const row = (r: Partial<ChangeRow> & Pick<ChangeRow, 'kind' | 'name'>): ChangeRow => ({
  before: null,
  after: null,
  scope: 'version 1.4.0',
  actor: 'ci',
  at: hoursAgo(5),
  ...r,
});

describe('summarizeChanges', () => {
  const bump = row({
    kind: 'package-changed',
    name: '@acme/db',
    before: '2.1.0',
    after: '3.0.0',
    distance: 'major',
  });
  const timeout = row({
    kind: 'configuration-event',
    name: 'TIMEOUT_MS',
    before: '30000',
    after: '5000',
    scope: 'server+production',
    actor: 'alice',
    at: hoursAgo(2),
    detail: 'variable changed',
  });

  it('lists the likeliest causes first, with scope, age and actor for scoped changes', () => {
    const declared = row({ kind: 'variable-declared', name: 'FEATURE_X', after: 'optional' });
    expect(summarizeChanges([declared, timeout, bump], 3, NOW)).toBe(
      'Changed: @acme/db 2.1.0 → 3.0.0; TIMEOUT_MS 30000 → 5000 (server+production, 2 h ago, alice); declares FEATURE_X (optional)',
    );
    expect(summarizeChanges([timeout, bump], 2, new Date(NOW))).toBe(
      'Changed: @acme/db 2.1.0 → 3.0.0; TIMEOUT_MS 30000 → 5000 (server+production, 2 h ago, alice)',
    );
  });

  it('cuts at max, counts the rest, and names each variable once', () => {
    const resolved = row({
      kind: 'resolved-variable-changed',
      name: 'TIMEOUT_MS',
      before: '30000',
      after: '5000',
      scope: 'server+production',
      actor: 'alice',
      at: hoursAgo(2),
    });
    const secret = row({
      kind: 'secret-changed',
      name: 'DB_PASSWORD',
      before: 'set',
      after: 'changed',
      scope: 'server+production',
      actor: 'bob',
      at: hoursAgo(0.05),
    });
    const added = row({ kind: 'package-added', name: '@acme/cache', after: '1.0.0' });
    expect(summarizeChanges([added, timeout, resolved, secret, bump], 2, NOW)).toBe(
      'Changed: @acme/db 2.1.0 → 3.0.0; TIMEOUT_MS 30000 → 5000 (server+production, 2 h ago, alice); 2 more',
    );
    expect(summarizeChanges([secret], 3, NOW)).toBe(
      'Changed: secret DB_PASSWORD changed (server+production, 3 min ago, bob)',
    );
  });

  it('is empty without changes and puts a breaking version first', () => {
    expect(summarizeChanges([], 3, NOW)).toBe('');
    const breaking = row({ kind: 'breaking', name: 'breaking', before: 'no', after: 'yes', breaking: true });
    expect(summarizeChanges([bump, breaking], 1, NOW)).toBe('Changed: breaking version; 1 more');
  });

  it('never shows a secret configuration event as a value', () => {
    const rotated = row({
      kind: 'configuration-event',
      name: 'DB_PASSWORD',
      before: 'set',
      after: 'rotated',
      scope: 'server+production',
      actor: 'alice',
      at: hoursAgo(1 / 60),
      detail: 'secret rotated (revision 2)',
    });
    expect(summarizeChanges([rotated], 3, NOW)).toBe(
      'Changed: secret DB_PASSWORD rotated (server+production, 1 min ago, alice)',
    );
  });

  it('says ages in the largest unit that fits', () => {
    expect([agoText(45_000), agoText(180_000), agoText(7_200_000), agoText(4 * 86_400_000)]).toEqual([
      '45 s',
      '3 min',
      '2 h',
      '4 d',
    ]);
  });
});

describe('versionDistance', () => {
  it('measures semver bumps and PEP 440 ones for PyPI', () => {
    expect(versionDistance('npm', '2.1.0', '3.0.0')).toBe('major');
    expect(versionDistance('npm', '2.1.0', '2.2.0')).toBe('minor');
    expect(versionDistance('oci', '2.1.0', '2.1.1')).toBe('patch');
    expect(versionDistance('npm', '2.1.0-rc.1', '2.1.0-rc.2')).toBe('prerelease');
    expect(versionDistance('npm', '2.1.0', '2.1.0')).toBe('none');
    expect(versionDistance('oci', 'sha-abc', 'sha-def')).toBe('not-semver');
    expect(versionDistance('pypi', '1.4', '1.5.0')).toBe('minor');
    expect(versionDistance('pypi', '1.4.2', '2.0')).toBe('major');
    expect(versionDistance('pypi', '1.4.2', '1.4.2.post1')).toBe('patch');
    expect(versionDistance('pypi', '1.5.0rc1', '1.5.0')).toBe('prerelease');
    expect(versionDistance('pypi', '1.0', '1.0.0')).toBe('none');
  });
});

const side = (
  version: string,
  config: Partial<VersionSide['config']>,
  extra: Partial<VersionSide> = {},
): VersionSide => ({
  version,
  config: { remotes: [], packages: [], ...config },
  breaking: false,
  migrationGuide: '',
  createdBy: 'ci',
  createdAt: hoursAgo(3),
  ...extra,
});

describe('diffVersions', () => {
  it('pairs a moved remote at the same position and says what changed', () => {
    const rows = diffVersions(
      side('1.0.0', {
        remotes: [{ type: 'sse', url: 'https://a.example.com/sse', headers: [{ name: 'Authorization' }] }],
      }),
      side('1.1.0', {
        remotes: [
          {
            type: 'streamable-http',
            url: 'https://b.example.com/mcp',
            headers: [{ name: 'Authorization' }, { name: 'X-Tenant' }],
          },
          { type: 'streamable-http', url: 'https://c.example.com/mcp' },
        ],
      }),
    );
    expect(rows.map((r) => [r.kind, r.before, r.after, r.detail])).toEqual([
      [
        'remote-changed',
        'https://a.example.com/sse',
        'https://b.example.com/mcp',
        'url changed, transport sse → streamable-http, headers +X-Tenant',
      ],
      ['remote-added', null, 'https://c.example.com/mcp', 'streamable-http'],
      // A header without a fixed value is an input the version asks for.
      ['variable-declared', null, 'optional', undefined],
    ]);
    expect(rows[0]).toMatchObject({ scope: 'version 1.1.0', actor: 'ci', at: hoursAgo(3) });
  });

  it('reports the breaking flag with the migration guide, and hides a secret input default', () => {
    const env = (def: string) => ({
      registryType: 'npm' as const,
      identifier: '@acme/x',
      version: '1.0.0',
      transport: { type: 'stdio' as const },
      environmentVariables: [{ name: 'TOKEN', isSecret: true, default: def }],
    });
    const rows = diffVersions(
      side('1.0.0', { packages: [env('old-default-secret')] }),
      side(
        '2.0.0',
        { packages: [env('new-default-secret')] },
        { breaking: true, migrationGuide: '# Move to v2\n\nSteps…' },
      ),
    );
    expect(rows.map((r) => [r.kind, r.before, r.after, r.detail])).toEqual([
      ['breaking', 'no', 'yes', 'migration guide: Move to v2'],
      [
        'variable-declaration-changed',
        'optional, secret, default set',
        'optional, secret, default set',
        undefined,
      ],
    ]);
    expect(JSON.stringify(rows)).not.toMatch(/default-secret/);
  });
});

describe('diffResolved', () => {
  const entry = (e: Partial<ResolvedEntry> & Pick<ResolvedEntry, 'name'>): ResolvedEntry => ({
    secret: false,
    scope: 'server',
    environment: null,
    revision: 1,
    updatedAt: hoursAgo(1),
    updatedBy: 'alice',
    ...e,
  });
  it('shows plain values, but only set/changed/unset and fingerprints for secrets', () => {
    const a = new Map([
      ['TIMEOUT_MS', entry({ name: 'TIMEOUT_MS', value: '30000', scope: 'server' })],
      [
        'API_KEY',
        entry({ name: 'API_KEY', secret: true, fingerprint: 'aaaaaaaaaaaaaaaa', scope: 'version' }),
      ],
      ['SAME', entry({ name: 'SAME', secret: true, fingerprint: 'ffff' })],
    ]);
    const b = new Map([
      [
        'TIMEOUT_MS',
        entry({ name: 'TIMEOUT_MS', value: '5000', scope: 'server-environment', environment: 'production' }),
      ],
      [
        'API_KEY',
        entry({ name: 'API_KEY', secret: true, fingerprint: 'bbbbbbbbbbbbbbbb', scope: 'version' }),
      ],
      [
        'SAME',
        entry({
          name: 'SAME',
          secret: true,
          fingerprint: 'ffff',
          scope: 'server-environment',
          environment: 'production',
        }),
      ],
      ['NEW_SECRET', entry({ name: 'NEW_SECRET', secret: true, fingerprint: 'cccc' })],
    ]);
    expect(
      diffResolved(a, b, { baseline: '1.0.0', candidate: '1.1.0' }).map((r) => [
        r.kind,
        r.name,
        r.before,
        r.after,
        r.scope,
        r.detail,
      ]),
    ).toEqual([
      [
        'secret-changed',
        'API_KEY',
        'set',
        'changed',
        'version 1.1.0',
        'fingerprint aaaaaaaaaaaa → bbbbbbbbbbbb',
      ],
      ['secret-changed', 'NEW_SECRET', 'unset', 'set', 'server', 'fingerprint - → cccc'],
      [
        'resolved-variable-changed',
        'TIMEOUT_MS',
        '30000',
        '5000',
        'server+production',
        'from server to server+production',
      ],
    ]);
  });
});
