import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPglite } from '#core/db/client.ts';
import {
  killLeftovers,
  platformEnv,
  pyleeEnv,
  runPylee,
  startPylee,
  type PyleeProcess,
  type RunResult,
} from '../helpers/pylee-process.ts';
import { tempDir } from '../helpers/temp-dir.ts';

// The CLI client commands, each a separate `pylee` process, against one real platform; then the
// local `audit verify` against that platform's data dir once it has stopped.

const ADMIN_TOKEN = 'commands-test-admin-token-0123456789';

let dataDir: string;
let platform: PyleeProcess;

beforeAll(async () => {
  dataDir = tempDir('pylee-commands');
  platform = await startPylee({ env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN }) });
});

afterAll(async () => {
  await killLeftovers();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/**
 * A config home without a saved login, so the machine user's `pylee login` cannot leak in
 * (XDG_CONFIG_HOME: the platform's config check refuses PYLEE_* names it does not know).
 */
const noLogin = () => path.join(dataDir, 'no-login');

/** Runs a client command against the platform, as the admin unless another token (or none) is given. */
function pylee(args: string[], options: { token?: string | null; url?: string } = {}) {
  const token = options.token === undefined ? ADMIN_TOKEN : (options.token ?? undefined);
  return runPylee(
    args,
    pyleeEnv({ PYLEE_URL: options.url ?? platform.apiUrl, PYLEE_TOKEN: token, XDG_CONFIG_HOME: noLogin() }),
  );
}

function json<T = Record<string, unknown>>(result: RunResult): T {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

interface TokenJson {
  id: string;
  name: string;
  prefix: string;
  permissions: string[];
  active: boolean;
  token?: string;
}

describe('pylee client commands', () => {
  it('me prints the org, token name and permissions of PYLEE_TOKEN', async () => {
    const result = await pylee(['me']);

    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim()).toBe('@default · token bootstrap · admin');
  });

  it('me --json prints the same as JSON', async () => {
    const me = json(await pylee(['me', '--json']));

    expect(me).toMatchObject({
      org: { slug: 'default' },
      token: { name: 'bootstrap' },
      permissions: ['admin'],
      servers: null,
    });
  });

  it('me shows the servers and environments a token is limited to', async () => {
    const created = json<TokenJson>(
      await pylee(
        'tokens create --name limited --permission deploy --server weather --environment production --json'.split(
          ' ',
        ),
      ),
    );

    const me = await pylee(['me'], { token: created.token });
    expect(me.code, me.stderr).toBe(0);
    expect(me.stdout.trim()).toBe(
      '@default · token limited · deploy · servers weather · environments production',
    );
  });

  it('tokens create, list and revoke manage a token, and a revoked token is refused', async () => {
    const created = json<TokenJson>(
      await pylee('tokens create --name ci --permission read --permission deploy --json'.split(' ')),
    );
    expect(created.token).toMatch(/^pyl_/);
    expect(created).toMatchObject({ name: 'ci', active: true });
    expect([...created.permissions].sort()).toEqual(['deploy', 'read']);

    const listed = json<TokenJson[]>(await pylee(['tokens', 'list', '--json']));
    expect(listed.map((t) => t.id)).toContain(created.id);
    expect(JSON.stringify(listed)).not.toContain(created.token);

    const asCi = await pylee(['me'], { token: created.token });
    expect(asCi.code, asCi.stderr).toBe(0);
    expect(asCi.stdout).toContain('token ci');

    const revoked = await pylee(['tokens', 'revoke', created.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked token ci (${created.id})`);

    const refused = await pylee(['me'], { token: created.token });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('revoked');

    const active = json<TokenJson[]>(await pylee(['tokens', 'list', '--json']));
    expect(active.map((t) => t.id)).not.toContain(created.id);
    const all = json<TokenJson[]>(await pylee(['tokens', 'list', '--all', '--json']));
    expect(all.find((t) => t.id === created.id)).toMatchObject({ active: false });
  });

  it('orgs create gives the new org an admin token of its own', async () => {
    const created = json<{ org: { slug: string }; token: string }>(
      await pylee(['orgs', 'create', 'acme', '--json']),
    );
    expect(created.org.slug).toBe('acme');
    expect(created.token).toMatch(/^pyl_/);

    const me = json(await pylee(['me', '--json'], { token: created.token }));
    expect(me).toMatchObject({ org: { slug: 'acme' }, permissions: ['admin'] });
  });

  it('audit verify with a token asks the API and reports the chain intact', async () => {
    const text = await pylee(['audit', 'verify']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('audit chain of @default is intact');

    const report = json(await pylee(['audit', 'verify', '--json']));
    expect(report).toMatchObject({ ok: true, org: 'default', firstBad: null });
    expect(report.checked).toBeGreaterThan(0);
  });
});

// Each of these changes nothing, so they run side by side.
describe.concurrent('pylee client commands on bad input', () => {
  it('tokens create without --permission exits 2 and says what it needs', async () => {
    const result = await pylee(['tokens', 'create', '--name', 'ci']);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--permission');
    expect(result.stdout).toBe('');
  });

  it('audit verify without a token refuses the data dir of a running platform', async () => {
    const result = await runPylee(
      ['audit', 'verify'],
      pyleeEnv({ PYLEE_DATA_DIR: dataDir, XDG_CONFIG_HOME: noLogin() }),
    );

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('in use by another Pylee process');
  });

  it('an unknown command exits 2 with the usage', async () => {
    const result = await pylee(['frobnicate']);

    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command "frobnicate"');
    expect(result.stderr).toContain('Usage:');
  });

  it('me without PYLEE_TOKEN exits 1 and says to set PYLEE_TOKEN', async () => {
    const result = await pylee(['me'], { token: null });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('PYLEE_TOKEN');
  });

  it('a PYLEE_URL where nothing listens exits 1 with "cannot reach"', async () => {
    const result = await pylee(['me'], { url: 'http://127.0.0.1:1' });

    expect(result.code).toBe(1);
    expect(result.stderr).toContain('cannot reach Pylee at http://127.0.0.1:1');
  });
});

describe('pylee audit verify on the data dir of a stopped platform', () => {
  const local = (flags: string[] = []) =>
    runPylee(
      ['audit', 'verify', ...flags],
      pyleeEnv({ PYLEE_DATA_DIR: dataDir, XDG_CONFIG_HOME: noLogin() }),
    );

  beforeAll(async () => {
    expect(await platform.stop()).toBe(0);
  });

  it('reads the chain from the data dir when no token is given, and finds it intact', async () => {
    const result = await local();

    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('audit chain of @default is intact');
    expect(fs.existsSync(path.join(dataDir, 'pylee.pid'))).toBe(false);
  });

  it('exits 1 and names the first altered event once the trail is tampered with', async () => {
    const db = await openPglite(path.join(dataDir, 'postgres'));
    try {
      await db.exec(`
        ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;
        UPDATE audit_events SET action = 'token.forged' WHERE seq = 2;
      `);
    } finally {
      await db.close();
    }

    const result = await local();
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain('BROKEN at event 2');

    const asJson = await local(['--json']);
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ ok: false, org: 'default', firstBad: { seq: 2 } });
  });
});
