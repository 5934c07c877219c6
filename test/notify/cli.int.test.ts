import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  killLeftovers,
  platformEnv,
  pyleeEnv,
  runPylee,
  startPylee,
  type PyleeProcess,
  type RunResult,
} from '#test/helpers/pylee-process.ts';
import { startSink, verifyWebhook, type Sink } from '#test/helpers/sink.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// `pylee start` runs the notify worker (alerts role) with the SSRF policy and public URL from its
// config; the CLI manages channels, silences and deliveries against it.

const ADMIN_TOKEN = 'notify-cli-test-admin-token-0123456789';
let dataDir: string;
let platform: PyleeProcess;
let sink: Sink;

beforeAll(async () => {
  dataDir = tempDir('pylee-notify-cli');
  sink = await startSink();
  platform = await startPylee({
    env: platformEnv(dataDir, {
      PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN,
      PYLEE_ALLOW_PRIVATE_WEBHOOKS: 'true',
      PYLEE_PUBLIC_URL: 'https://pylee.example.com',
    }),
  });
});

afterAll(async () => {
  await killLeftovers();
  await sink?.close();
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

const pylee = (args: string[]) =>
  runPylee(
    args,
    pyleeEnv({
      PYLEE_URL: platform.apiUrl,
      PYLEE_TOKEN: ADMIN_TOKEN,
      XDG_CONFIG_HOME: path.join(dataDir, 'cfg'),
    }),
  );
function json<T = Record<string, unknown>>(result: RunResult): T {
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as T;
}

describe('pylee channels, silences and deliveries', () => {
  it('creates channels whose test messages reach a signed webhook and a Slack-shaped sink', async () => {
    const hook = json<{ id: string; secret: string }>(
      await pylee([
        'channels', 'create', '--json', '--name', 'hook', '--kind', 'webhook', '--target', `${sink.url}/cli-hook`,
        '--event', 'deployment.*', '--match', 'environment=production', '--match', 'severity=~critical|warning',
      ]), // prettier-ignore
    );
    expect(hook.secret).toMatch(/^whsec_/);
    const slack = json<{ id: string }>(
      await pylee([
        'channels',
        'create',
        '--json',
        '--name',
        'slack',
        '--kind',
        'slack',
        '--target',
        `${sink.url}/cli-slack`,
      ]),
    );
    sink.slack('/cli-slack');
    const listed = await pylee(['channels', 'list']);
    expect(listed.stdout).toContain('match=environment=production,severity=~critical|warning');
    expect(listed.stdout).not.toContain('/cli-hook');

    const sent = json<{ deliveryId: string }>(await pylee(['channels', 'test', '--json', hook.id]));
    json(await pylee(['channels', 'test', '--json', slack.id]));
    const [req] = await sink.waitForDelivered('/cli-hook', 1, 30_000);
    expect(verifyWebhook(req!, hook.secret)).toMatchObject({ id: sent.deliveryId, type: 'channel.test' });
    const [slackReq] = await sink.waitForDelivered('/cli-slack', 1, 30_000);
    expect(slackReq!.slackErrors).toEqual([]);

    const deliveries = await pylee(['deliveries', 'list', '--status', 'delivered']);
    expect(deliveries.stdout).toContain(sent.deliveryId);

    const refused = await pylee([
      'channels',
      'create',
      '--name',
      'meta',
      '--kind',
      'webhook',
      '--target',
      'http://169.254.169.254/',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/link-local/);
  });

  it('creates, lists and expires silences', async () => {
    const created = json<{ id: string; state: string }>(
      await pylee([
        'silences',
        'create',
        '--json',
        '--match',
        'server=weather',
        '--for',
        '2h',
        '--comment',
        'upgrade',
      ]),
    );
    expect(created.state).toBe('active');
    expect((await pylee(['silences', 'list', '--state', 'active'])).stdout).toContain(created.id);
    json(await pylee(['silences', 'expire', '--json', created.id]));
    expect((await pylee(['silences', 'list', '--state', 'expired'])).stdout).toContain(created.id);
    const bad = await pylee(['silences', 'create', '--match', 'server', '--for', '1h', '--comment', 'x']);
    expect(bad.code).toBe(2);
  });
});
