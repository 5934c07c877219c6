import { describe, expect, it } from 'vitest';
import { lostVersions, upstreamOf, type DeploymentHistoryRow } from '#core/gateway/directory.ts';

const row = (d: Partial<DeploymentHistoryRow>): DeploymentHistoryRow => ({
  version: '1.1.0',
  kind: 'deploy',
  status: 'succeeded',
  sessions: 'migrate',
  previous_version: '1.0.0',
  environment: 'production',
  rolled_back_version: null,
  ...d,
});

describe('lostVersions', () => {
  it('gives a rolled-back or aborted version its deployment’s policy, and drains one promoted over', () => {
    const weights = [{ version: '1.0.0', weight: 100 }];
    expect(lostVersions([row({ status: 'rolled-back', sessions: 'terminate' })], weights)).toEqual({
      '1.1.0': 'terminate',
    });
    expect(lostVersions([row({ status: 'aborted' })], weights)).toEqual({ '1.1.0': 'migrate' });
    // 1.1.0 promoted to 100 %: 1.0.0 drains.
    expect(lostVersions([row({ status: 'succeeded' })], [{ version: '1.1.0', weight: 100 }])).toEqual({
      '1.0.0': 'drain',
    });
  });

  it('reads a rollback deployment as the loss of the version it leaves, newest deployment first', () => {
    const history = [
      row({ kind: 'rollback', version: '1.0.0', previous_version: '1.1.0', sessions: 'drain' }),
      row({ status: 'succeeded', sessions: 'terminate' }),
    ];
    expect(lostVersions(history, [{ version: '1.0.0', weight: 100 }])).toEqual({ '1.1.0': 'drain' });
  });

  it('leaves out versions that still have weight', () => {
    const weights = [
      { version: '1.0.0', weight: 70 },
      { version: '1.1.0', weight: 30 },
    ];
    expect(lostVersions([row({ status: 'paused' })], weights)).toEqual({});
  });
});

describe('upstreamOf', () => {
  it('prefers streamable HTTP, lower-cases header names, and keeps only filled headers', () => {
    const up = upstreamOf(
      {
        remotes: [
          { type: 'sse', url: 'http://a/sse' },
          {
            type: 'streamable-http',
            url: 'http://b/mcp',
            headers: [
              { name: 'X-Key', value: 'v' },
              { name: 'X-Empty', description: 'never set' },
            ],
          },
        ],
      },
      '1.0.0',
    );
    expect(up).toEqual({
      version: '1.0.0',
      transport: 'streamable-http',
      url: 'http://b/mcp',
      headers: { 'x-key': 'v' },
    });
    expect(upstreamOf({ remotes: [{ type: 'sse', url: 'http://a/sse' }] }, '1.0.0', 'sse')).toMatchObject({
      transport: 'sse',
    });
  });

  it('names what is missing: a remote, a remote of the transport, a variable, a usable URL', () => {
    expect(upstreamOf({ remotes: [] }, '1.0.0')).toEqual({
      problem: 'version 1.0.0 has no remote in its configuration, so the gateway cannot reach it',
    });
    expect(
      upstreamOf({ remotes: [{ type: 'streamable-http', url: 'http://a/mcp' }] }, '1.0.0', 'sse'),
    ).toMatchObject({
      problem: expect.stringContaining('no remote of type sse'),
    });
    expect(
      upstreamOf({ remotes: [{ type: 'streamable-http', url: 'http://{host}/mcp' }] }, '1.0.0'),
    ).toMatchObject({
      problem: expect.stringContaining('needs the variable host'),
    });
    expect(upstreamOf({ remotes: [{ type: 'streamable-http', url: 'ftp://a/mcp' }] }, '1.0.0')).toMatchObject(
      {
        problem: expect.stringContaining('not an http(s) URL'),
      },
    );
  });
});
