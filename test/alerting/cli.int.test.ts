import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

// The alerting commands of `pylee` (alert-rules, alerts), each a separate process against one real
// platform fed through its OTLP collector, as an on-call engineer or a CI gate runs them.

const ADMIN_TOKEN = 'alert-commands-admin-token-0123456789';
const SERVER = 'checkout';

let dataDir: string;
let workDir: string;
let platform: PyleeProcess;
let ingestKey: string;

async function call<T = Record<string, unknown>>(method: string, route: string, body?: unknown): Promise<T> {
  const res = await fetch(`${platform.apiUrl}/api/v1${route}`, {
    method,
    headers: {
      authorization: `Bearer ${ADMIN_TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return JSON.parse(text) as T;
}

const attr = (key: string, value: string) => ({ key, value: { stringValue: value } });

/** `count` tool calls of one version over the last minute, `failing` of them failed, through the collector. */
async function sendTraffic(spec: {
  version: string;
  count: number;
  failing: number;
  latencyMs: number;
}): Promise<void> {
  const now = Date.now();
  const spans = Array.from({ length: spec.count }, (_, i) => {
    const start = BigInt(now - 60_000 + i * Math.floor(55_000 / spec.count)) * 1_000_000n;
    return {
      traceId: randomBytes(16).toString('hex'),
      spanId: randomBytes(8).toString('hex'),
      name: 'tools/call pay',
      kind: 2,
      startTimeUnixNano: start.toString(),
      endTimeUnixNano: (start + BigInt(spec.latencyMs) * 1_000_000n).toString(),
      attributes: [attr('mcp.method.name', 'tools/call'), attr('gen_ai.tool.name', 'pay')],
      ...(i < spec.failing ? { status: { code: 2 } } : {}),
    };
  });
  const body = {
    resourceSpans: [
      {
        resource: {
          attributes: [
            attr('service.name', SERVER),
            attr('service.version', spec.version),
            attr('deployment.environment.name', 'production'),
          ],
        },
        scopeSpans: [{ scope: { name: 'pylee-alert-cli-test' }, spans }],
      },
    ],
  };
  const res = await fetch(`${platform.otlpUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ingestKey}` },
    body: JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`OTLP export: ${res.status} ${await res.text()}`);
}

/** Waits until the collector's batches are in ClickHouse: the version shows `count` requests. */
async function landed(version: string, count: number): Promise<void> {
  for (let i = 0; i < 150; i++) {
    const summary = await call<{ requests?: number }>(
      'GET',
      `/servers/${SERVER}/versions/${version}/summary?environment=production&window=1h`,
    );
    if ((summary.requests ?? 0) >= count) return;
    await sleep(200);
  }
  throw new Error(`the ${count} requests of ${version} never reached ClickHouse`);
}

beforeAll(async () => {
  dataDir = tempDir('pylee-alert-commands');
  workDir = tempDir('pylee-alert-cli');
  platform = await startPylee({
    env: platformEnv(dataDir, { PYLEE_BOOTSTRAP_TOKEN: ADMIN_TOKEN }),
    timeoutMs: 120_000,
  });
  ingestKey = (await call<{ key: string }>('POST', '/ingest-keys', { name: 'alert cli test' })).key;
});

afterAll(async () => {
  await killLeftovers();
  for (const dir of [dataDir, workDir]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const env = () =>
  pyleeEnv({ PYLEE_URL: platform.apiUrl, PYLEE_TOKEN: ADMIN_TOKEN, PYLEE_CONFIG_DIR: workDir });
const pylee = (...args: string[]) => runPylee(args, env());

function json<T = Record<string, unknown>>(result: RunResult, code = 0): T {
  expect(result.code, result.stderr).toBe(code);
  return JSON.parse(result.stdout) as T;
}
function ok(result: RunResult): string {
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

interface Rule {
  id: string;
  name: string;
  version: string;
  kind: string;
  threshold: number | null;
  interval: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  enabled: boolean;
}
interface Alert {
  id: string;
  state: string;
  ruleName: string;
  version: string | null;
  baselineVersion: string | null;
  acknowledgement: { by: string; comment: string | null } | null;
  labels: Record<string, string>;
}
interface Evaluation {
  series: number;
  transitions: { from: string; to: string; labels: Record<string, string> }[];
  alerts: Alert[];
}

describe('pylee alert-rules and alerts', () => {
  let ruleId: string;
  let alertId: string;

  beforeAll(async () => {
    ok(await pylee('servers', 'create', SERVER));
    for (const v of ['1.0.0', '1.1.0'])
      ok(await pylee('versions', 'create', SERVER, v, '--status', 'stable'));
    // Half of 1.0.0's calls fail.
    await sendTraffic({ version: '1.0.0', count: 40, failing: 20, latencyMs: 100 });
    await landed('1.0.0', 40);
  });

  it('creates rules from flags and from a file, lists and shows them', async () => {
    // A long interval: after its first run (at creation) the scheduler leaves the evaluations to the test.
    const created = await pylee(
      ...['alert-rules', 'create', '--name', 'Checkout errors', '--server', SERVER, '--kind', 'threshold'],
      ...['--metric', 'errorRate', '--threshold', '0.1', '--interval', '1h', '--window', '10m'],
      ...['--severity', 'critical', '--label', 'team=payments', '--summary', 'errors at {{ $value }}'],
      ...['--group-wait', '0s'],
    );
    expect(ok(created)).toContain('created alert rule Checkout errors');
    expect(created.stdout).toMatch(/condition:\s+errorRate > 0\.1 over 10m, every 1h/);

    fs.writeFileSync(
      path.join(workDir, 'rule.json'),
      JSON.stringify({
        name: 'Checkout silent',
        server: SERVER,
        kind: 'absence',
        window: '10m',
        interval: '30m',
        annotations: { runbookUrl: 'https://runbooks.example.com/checkout' },
      }),
    );
    // Flags override the file.
    const fromFile = json<Rule>(
      await pylee(
        'alert-rules',
        'create',
        '--file',
        path.join(workDir, 'rule.json'),
        '--interval',
        '1h',
        '--json',
      ),
    );
    expect(fromFile).toMatchObject({
      name: 'Checkout silent',
      kind: 'absence',
      interval: '1h',
      annotations: { runbookUrl: 'https://runbooks.example.com/checkout' },
    });

    const rules = json<Rule[]>(await pylee('alert-rules', 'list', '--server', SERVER, '--json'));
    expect(rules.map((r) => r.name).sort()).toEqual(['Checkout errors', 'Checkout silent']);
    const rule = rules.find((r) => r.name === 'Checkout errors') as Rule;
    expect(rule).toMatchObject({ version: '*', threshold: 0.1, labels: { team: 'payments' }, enabled: true });
    ruleId = rule.id;
    const table = ok(await pylee('alert-rules', 'list'));
    expect(table).toMatch(/NAME\s+SERVER\s+ENV\s+VERSION\s+CONDITION/);
    expect(table).toMatch(/Checkout errors\s+checkout\s+\*\s+\*\s+errorRate > 0\.1/);
    expect(table).toMatch(/Checkout silent\s+checkout\s+\*\s+\*\s+no requests for 10m/);

    const shown = ok(await pylee('alert-rules', 'show', ruleId));
    expect(shown).toContain(`Checkout errors (${ruleId})`);
    expect(shown).toMatch(/scope:\s+checkout · env each · version \*/);
    expect(shown).toMatch(/severity:\s+critical/);
    expect(shown).toContain('labels:      team=payments');
  });

  it('evaluates: exit 1 while an alert fires; alerts list --fail-on-firing gates on it; ack', async () => {
    const fired = await pylee('alert-rules', 'evaluate', ruleId);
    expect(fired.code, fired.stderr).toBe(1);
    expect(fired.stdout).toContain('1 series');
    expect(fired.stdout).toMatch(
      /FIRING\s+critical\s+Checkout errors\s+checkout\s+production\s+1\.0\.0\s+0\.500\s+0\.100\s/,
    );

    const listed = ok(await pylee('alerts', 'list', '--state', 'firing'));
    expect(listed).toMatch(/STATE\s+SEVERITY\s+RULE/);
    expect(listed).toMatch(/FIRING\s+critical\s+Checkout errors/);
    const alerts = json<Alert[]>(await pylee('alerts', 'list', '--server', SERVER, '--json'));
    expect(alerts).toMatchObject([{ state: 'firing', ruleName: 'Checkout errors', version: '1.0.0' }]);
    alertId = alerts[0]?.id as string;

    const gate = await pylee('alerts', 'list', '--fail-on-firing');
    expect(gate.code, gate.stderr).toBe(1);
    expect(gate.stdout).toContain('Checkout errors');
    // Nothing fires for 2.0.0, or in staging: the gate passes.
    const other = await pylee('alerts', 'list', '--release', '2.0.0', '--fail-on-firing');
    expect(other.code, other.stderr).toBe(0);
    expect(other.stdout.trim()).toBe('no alerts');
    expect((await pylee('alerts', 'list', '--environment', 'staging', '--fail-on-firing')).code).toBe(0);

    expect(ok(await pylee('alerts', 'ack', alertId, '--comment', 'rolling back'))).toBe(
      `acknowledged Checkout errors (${alertId})\n`,
    );
    const acked = json<Alert[]>(await pylee('alerts', 'list', '--state', 'firing', '--json'), 0);
    expect(acked[0]).toMatchObject({ acknowledgement: { by: 'bootstrap', comment: 'rolling back' } });
    // Acknowledged is still firing: a CI gate still stops.
    expect((await pylee('alerts', 'list', '--fail-on-firing')).code).toBe(1);
  });

  it('updates a rule: the next evaluation resolves; deletes it', async () => {
    const updated = ok(
      await pylee('alert-rules', 'update', ruleId, '--threshold', '0.9', '--label', 'tier=1'),
    );
    expect(updated).toContain('updated alert rule Checkout errors');
    expect(updated).toMatch(/condition:\s+errorRate > 0\.9/);
    expect(updated).toContain('labels:      team=payments tier=1');

    // This evaluation resolves it (or the scheduler, rescheduled by the update, got there first).
    const evaluation = json<Evaluation>(await pylee('alert-rules', 'evaluate', ruleId, '--json'));
    expect(evaluation.alerts).toMatchObject([
      { state: 'resolved', acknowledgement: null, labels: { version: '1.0.0', tier: '1', team: 'payments' } },
    ]);
    expect(ok(await pylee('alerts', 'list', '--fail-on-firing', '--state', 'firing')).trim()).toBe(
      'no alerts',
    );
    // Only firing or pending alerts can be acknowledged.
    const late = await pylee('alerts', 'ack', alertId);
    expect(late.code).toBe(1);
    expect(late.stderr).toContain('(alert-not-active)');
    const history = ok(await pylee('alerts', 'history', '--rule', ruleId));
    expect(history).toMatch(/firing → resolved/);
    expect(history).toMatch(/inactive → firing/);

    expect(ok(await pylee('alert-rules', 'delete', ruleId))).toContain('deleted alert rule Checkout errors');
    const gone = await pylee('alert-rules', 'show', ruleId);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('not found');
    expect(json<Rule[]>(await pylee('alert-rules', 'list', '--json')).map((r) => r.name)).toEqual([
      'Checkout silent',
    ]);
  });

  it('refuses bad input: exit 2 for usage, 1 with the reason from the API, creating nothing', async () => {
    const notNumber = await pylee(
      'alert-rules',
      'create',
      '--name',
      'x',
      '--server',
      SERVER,
      '--threshold',
      'lots',
    );
    expect(notNumber.code).toBe(2);
    expect(notNumber.stderr).toContain('--threshold needs a number, got lots');
    const noThreshold = await pylee(
      ...[
        'alert-rules',
        'create',
        '--name',
        'x',
        '--server',
        SERVER,
        '--kind',
        'threshold',
        '--metric',
        'cpu',
      ],
    );
    expect(noThreshold.code).toBe(1);
    expect(noThreshold.stderr).toContain('(invalid-alert-rule)');
    const badSelector = await pylee(
      ...['alert-rules', 'create', '--name', 'x', '--server', SERVER, '--kind', 'threshold'],
      ...['--metric', 'cpu', '--threshold', '1', '--selector', 'newest'],
    );
    expect(badSelector.code).toBe(1);
    expect(badSelector.stderr).toContain('is not a version selector');
    const ackMissing = await pylee('alerts', 'ack', '00000000-0000-7000-8000-000000000000');
    expect(ackMissing.code).toBe(1);
    expect(ackMissing.stderr).toContain('(alert-not-found)');
    expect(json<Rule[]>(await pylee('alert-rules', 'list', '--json')).map((r) => r.name)).toEqual([
      'Checkout silent',
    ]);
  });

  it('takes --threshold 0 as a threshold, on create and on update: any failed call fires', async () => {
    const created = json<Rule>(
      await pylee(
        ...['alert-rules', 'create', '--name', 'Any error', '--server', SERVER, '--kind', 'threshold'],
        ...['--metric', 'errorRate', '--threshold', '0', '--interval', '1h', '--window', '10m', '--json'],
      ),
    );
    expect(created).toMatchObject({ name: 'Any error', threshold: 0 });
    const fired = json<Evaluation>(await pylee('alert-rules', 'evaluate', created.id, '--json'), 1);
    expect(fired.alerts).toMatchObject([{ state: 'firing', ruleName: 'Any error', version: '1.0.0' }]);

    ok(await pylee('alert-rules', 'update', created.id, '--threshold', '0.9'));
    const lowered = ok(await pylee('alert-rules', 'update', created.id, '--threshold', '0'));
    expect(lowered).toMatch(/condition:\s+errorRate > 0 over 10m/);
    expect(json<Rule>(await pylee('alert-rules', 'show', created.id, '--json')).threshold).toBe(0);
    ok(await pylee('alert-rules', 'delete', created.id));
  });

  it('watches the canary of a real rollout against the stable version, and ends when it is rolled back', async () => {
    ok(await pylee('deploy', SERVER, '1.0.0', '--env', 'production'));
    ok(
      await pylee(
        'deploy',
        SERVER,
        '1.1.0',
        '--env',
        'production',
        '--strategy',
        'canary',
        '--steps',
        '10,100',
        '--approval',
      ),
    );
    // Both versions are `stable` in the registry; only the deployment says which one is the canary.
    await sendTraffic({ version: '1.0.0', count: 40, failing: 0, latencyMs: 100 });
    await sendTraffic({ version: '1.1.0', count: 40, failing: 0, latencyMs: 300 });
    await landed('1.1.0', 40);
    const rule = json<Rule>(
      await pylee(
        ...[
          'alert-rules',
          'create',
          '--name',
          'Canary slower',
          '--server',
          SERVER,
          '--environment',
          'production',
        ],
        ...['--selector', 'canary', '--kind', 'relative', '--metric', 'latencyP95', '--factor', '1.2'],
        ...['--interval', '1h', '--window', '10m', '--json'],
      ),
    );
    // Fired by the scheduler's first run at creation, or by this evaluation.
    const fired = json<Evaluation>(await pylee('alert-rules', 'evaluate', rule.id, '--json'), 1);
    expect(fired.series).toBe(1);
    expect(fired.alerts).toMatchObject([{ state: 'firing', version: '1.1.0', baselineVersion: '1.0.0' }]);

    expect(ok(await pylee('rollback', SERVER, '--env', 'production', '--reason', 'slower'))).toContain(
      'production: 1.1.0 → 1.0.0',
    );
    // 1.1.0 still has traffic in the window, but it is no canary any more: its alert ends (no `nodata`).
    const ended = json<Evaluation>(await pylee('alert-rules', 'evaluate', rule.id, '--json'));
    expect(ended.series).toBe(0);
    expect(ended.alerts).toMatchObject([{ state: 'resolved', version: '1.1.0' }]);
    const history = ok(await pylee('alerts', 'history', '--rule', rule.id));
    expect(history).toMatch(/Canary slower\s+checkout\s+production\s+1\.1\.0\s+firing → resolved/);
    expect((await pylee('alerts', 'list', '--server', SERVER, '--fail-on-firing')).code).toBe(0);
  });
});
