/**
 * `npm run demo`: the whole story on one machine in about two minutes. Starts Pylee (embedded stores),
 * two versions of a real MCP server instrumented with OpenTelemetry and registered with their URLs as
 * remotes, MCP clients as users (connected to Pylee's gateway, never to a version), a Slack-shaped
 * sink and a signed-webhook sink; registers the server, rolls 1.0.0 out, then starts a canary of 1.1.0
 * whose `get_forecast` tool is slower, fails more and drops some calls' connections (crashed
 * sessions). The gateway puts new sessions on 1.1.0 by the rollout's weights and records every call;
 * Pylee's alert reaches "Slack", the canary analysis fails, the rollout rolls back on its own and the
 * gateway moves the canary's sessions to 1.0.0. The demo prints what the gateway answered (the
 * `x-pylee-version` of its responses) and each version's crash-free sessions (release health). Everything stays up
 * (Ctrl-C stops it) so the UI at the printed URL can be explored.
 *
 *   DEMO_API_PORT (8080), DEMO_OTLP_PORT (4318), DEMO_GATEWAY_PORT (8081),
 *   DEMO_DATA_DIR (./demo-data, wiped at start),
 *   DEMO_EXIT=1 to stop once the story is told (exit code 0 only if every step happened).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startSinks } from './sinks.ts';
import { startTraffic, type Split, type Traffic } from './traffic.ts';

const root = path.resolve(import.meta.dirname, '..');
const apiPort = Number(process.env.DEMO_API_PORT ?? 8080);
const otlpPort = Number(process.env.DEMO_OTLP_PORT ?? 4318);
const gatewayPort = Number(process.env.DEMO_GATEWAY_PORT ?? 8081);
const dataDir = path.resolve(process.env.DEMO_DATA_DIR ?? path.join(root, 'demo-data'));
const exitWhenDone = process.env.DEMO_EXIT === '1';
const TOKEN = 'pyl_demo-admin-token-not-for-production';
const SERVER = 'weather-mcp';
const ENV = 'production';
const api = `http://127.0.0.1:${apiPort}`;
/** Where the demo's MCP clients connect: the gateway endpoint of weather-mcp in production. */
const endpoint = `http://127.0.0.1:${gatewayPort}/default/${SERVER}/${ENV}/mcp`;
/** How the canary steps are analysed: 10 s samples so the story fits in about two minutes. */
// The analysis judges every 20 s: the alert (every 5 s, firing at once) speaks first, as on-call sees it.
const DEMO_ANALYSIS = { analysis: { interval: '20s', lifetime: '3m' } };
/** The weather providers' client library each version ships (server.json package). */
const providers = (version: string) => ({
  registryType: 'npm',
  identifier: '@weather/providers',
  version,
  transport: { type: 'stdio' },
});
const started = Date.now();

const children: ChildProcess[] = [];
let traffic: Traffic | undefined;

const say = (line: string) => {
  const seconds = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stdout.write(`[${seconds}s] ${line}\n`);
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function call<T = Record<string, unknown>>(method: string, url: string, body?: unknown): Promise<T> {
  const res = await fetch(`${api}/api/v1${url}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url} → ${res.status} ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

async function startPlatform(): Promise<void> {
  fs.rmSync(dataDir, { recursive: true, force: true });
  fs.mkdirSync(dataDir, { recursive: true });
  const log = fs.openSync(path.join(dataDir, 'pylee.log'), 'a');
  const child = spawn(process.execPath, [path.join(root, 'cli/main.ts'), 'start'], {
    cwd: root,
    env: {
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('PYLEE_'))),
      PYLEE_DATA_DIR: dataDir,
      PYLEE_API_PORT: String(apiPort),
      PYLEE_OTLP_PORT: String(otlpPort),
      PYLEE_GATEWAY_PORT: String(gatewayPort),
      PYLEE_BOOTSTRAP_TOKEN: TOKEN,
      PYLEE_ALLOW_PRIVATE_WEBHOOKS: 'true',
      PYLEE_PUBLIC_URL: api,
    },
    stdio: ['ignore', log, log],
  });
  children.push(child);
  child.on('exit', (code) => {
    if (!stopping) {
      say(`Pylee stopped unexpectedly (exit ${code}); see ${path.join(dataDir, 'pylee.log')}`);
      void shutdown(1);
    }
  });
  for (let i = 0; i < 240; i++) {
    const ready = await fetch(`${api}/readyz`).then(
      (res) => res.ok,
      () => false,
    );
    if (ready) return;
    await sleep(500);
  }
  throw new Error(`Pylee did not become ready; see ${path.join(dataDir, 'pylee.log')}`);
}

async function startMcpServer(version: string, ingestKey: string, regression: boolean): Promise<string> {
  const child = fork(path.join(import.meta.dirname, 'mcp-server.ts'), {
    env: {
      ...process.env,
      DEMO_PORT: '0',
      DEMO_VERSION: version,
      DEMO_ENVIRONMENT: ENV,
      DEMO_OTLP_URL: `http://127.0.0.1:${otlpPort}`,
      DEMO_INGEST_KEY: ingestKey,
      ...(regression
        ? {
            DEMO_SLOW_TOOL: 'get_forecast',
            DEMO_SLOW_MS: '180',
            DEMO_ERROR_RATE: '0.35',
            DEMO_CRASH_RATE: '0.15',
          }
        : {}),
    },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.once('message', (message: { url: string }) => resolve(message.url));
    child.once('exit', (code) => reject(new Error(`MCP server ${version} exited with ${code}`)));
  });
}

let stopping = false;
async function shutdown(code: number): Promise<never> {
  stopping = true;
  await traffic?.stop().catch(() => undefined);
  for (const child of children.reverse()) child.kill('SIGTERM');
  await sleep(1500);
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

interface Environments {
  environments: { environment: string; desired: { version: string; weight: number }[] }[];
}

/** The weights the rollout holds for production now: what the gateway places new sessions by. */
async function rolloutWeights(): Promise<string> {
  const { environments } = await call<Environments>('GET', `/servers/${SERVER}/environments`);
  const desired = environments.find((env) => env.environment === ENV)?.desired ?? [];
  return desired.map(({ version, weight }) => `${version} ${weight} %`).join(', ');
}

const byVersion = (a: string, b: string) => a.localeCompare(b, 'en', { numeric: true });
const total = (counts: Record<string, number>) => Object.values(counts).reduce((sum, n) => sum + n, 0);

/** One line on what the gateway answered over `seconds`: who served the calls, where new sessions went. */
function gatewayLine(split: Split, seconds: number): string {
  const calls = total(split.calls);
  const versions = [...new Set([...Object.keys(split.calls), ...Object.keys(split.sessions)])].sort(
    byVersion,
  );
  const served = versions.map((version) => {
    const share = calls ? Math.round((100 * (split.calls[version] ?? 0)) / calls) : 0;
    return `${version} served ${share} % (${split.calls[version] ?? 0} calls, ${split.sessions[version] ?? 0} new sessions)`;
  });
  const moves = new Map<string, number>();
  for (const { from, to } of split.moved)
    moves.set(`${from} → ${to}`, (moves.get(`${from} → ${to}`) ?? 0) + 1);
  const moved = [...moves].map(([route, n]) => `; moved ${n} live session${n === 1 ? '' : 's'} ${route}`);
  const failed = split.failed ? `; ${split.failed} calls unanswered` : '';
  return `Gateway, last ${seconds} s: ${served.join(' · ') || 'no calls'}${moved.join('')}${failed}`;
}

interface ReleaseHealth {
  versions: { version: string; sessions: { total: number }; crashFreeSessions: number | null }[];
}

/** Each version's crash-free sessions in production over the last 5 minutes, from the release-health API. */
async function releaseHealthLine(): Promise<string> {
  const health = await call<ReleaseHealth>(
    'GET',
    `/servers/${SERVER}/release-health?environment=${ENV}&window=5m`,
  );
  const rate = (v: number | null) =>
    v === null ? '—' : v === 1 ? '100 %' : `${(Math.floor(v * 1000) / 10).toFixed(1)} %`;
  const versions = [...health.versions]
    .sort((a, b) => byVersion(a.version, b.version))
    .map(
      (v, i) =>
        `${v.version}${i === 0 ? ' crash-free sessions' : ''} ${rate(v.crashFreeSessions)} (${v.sessions.total} sessions)`,
    );
  return `Release health in production, last 5 min: ${versions.join(' · ') || 'no sessions'} — see ${api}/servers/${SERVER}/releases`;
}

async function main(): Promise<void> {
  say(`Starting Pylee (embedded PGlite, chDB, redis-server) in ${path.relative(process.cwd(), dataDir)}/ …`);
  await startPlatform();
  say(
    `Pylee is up: API and UI on ${api}, OTLP on http://127.0.0.1:${otlpPort}, MCP gateway on http://127.0.0.1:${gatewayPort}`,
  );
  const sinks = await startSinks(say);

  await call('POST', '/servers', {
    slug: SERVER,
    name: 'Weather MCP',
    description: 'Forecasts and alerts over MCP',
  });
  const { key: ingestKey } = await call<{ key: string }>('POST', '/ingest-keys', {
    name: 'demo',
    server: SERVER,
  });
  const urls: Record<string, string> = {
    '1.0.0': await startMcpServer('1.0.0', ingestKey, false),
    '1.1.0': await startMcpServer('1.1.0', ingestKey, true),
  };
  // Each version names where it runs: the gateway forwards its sessions there.
  await call('POST', `/servers/${SERVER}/versions`, {
    version: '1.0.0',
    releaseNotes: '## 1.0.0\n\nForecasts, alerts and city search.',
    remotes: [{ type: 'streamable-http', url: urls['1.0.0'] }],
    packages: [providers('1.4.0')],
  });
  await call('PATCH', `/servers/${SERVER}/versions/1.0.0`, { status: 'stable', reason: 'in production' });
  await call('POST', `/servers/${SERVER}/versions`, {
    version: '1.1.0',
    releaseNotes: '## 1.1.0\n\n`get_forecast` now asks a second weather provider.',
    remotes: [{ type: 'streamable-http', url: urls['1.1.0'] }],
    // What the canary's verdict will name as the likely cause.
    packages: [providers('2.0.0')],
  });
  await call('PATCH', `/servers/${SERVER}/versions/1.1.0`, {
    status: 'release-candidate',
    reason: 'canary in production',
  });
  const { token: connectToken } = await call<{ token: string }>('POST', '/tokens', {
    name: 'demo MCP clients',
    permissions: ['connect'],
  });
  await call('POST', '/channels', {
    name: 'on-call (Slack)',
    kind: 'slack',
    url: sinks.slackUrl,
    events: ['alert.*', 'canary.verdict', 'deployment.status'],
  });
  const webhook = await call<{ secret: string }>('POST', '/channels', {
    name: 'rollout events',
    kind: 'webhook',
    url: sinks.webhookUrl,
    events: ['deployment.*'],
  });
  sinks.setWebhookSecret(webhook.secret);
  await call('POST', '/alert-rules', {
    name: 'Canary errors above stable',
    server: SERVER,
    environment: ENV,
    version: 'canary',
    kind: 'relative',
    metric: 'errorRate',
    offset: 0.05,
    window: '1m',
    interval: '5s',
    for: '0s',
    severity: 'critical',
    groupWait: '0s',
    // The canary analysis decides: no page for a canary Pylee is about to roll back.
    duringRollout: 'hold',
    annotations: {
      summary: 'Canary error rate {{ $value }} vs stable {{ $threshold }}',
      runbookUrl: 'https://runbooks.example.com/weather-mcp',
    },
  });
  say(
    `Registered ${SERVER} 1.0.0 (stable) and 1.1.0 with their MCP servers as remotes, an ingest key, a connect token, Slack + webhook channels, an alert rule`,
  );

  for (const [version, url] of Object.entries(urls)) {
    await call('POST', `/servers/${SERVER}/health-checks`, {
      name: `mcp ${version}`,
      kind: 'mcp',
      url,
      environment: ENV,
      versionSelector: version,
      interval: '10s',
      timeout: '5s',
    });
  }
  say(`MCP servers 1.0.0 and 1.1.0 are running (OpenTelemetry → Pylee), with MCP health checks`);

  await call('POST', `/servers/${SERVER}/deployments`, {
    version: '1.0.0',
    environment: ENV,
    strategy: 'immediate',
    reason: 'initial release',
  });
  traffic = await startTraffic({
    url: endpoint,
    token: connectToken,
    callsPerSecond: 25,
    clients: 25,
    callsPerSession: { min: 2, max: 8 },
  });
  say(`MCP clients call the tools 25 times a second through the gateway, ${endpoint}`);
  say('  25 clients; each session makes 2–8 calls, then its client starts a new one, as users come and go.');
  say('  Which version served a call is what the gateway says in each answer (x-pylee-version).');
  say('Collecting a baseline for 30 s …');
  await sleep(30_000);
  say(gatewayLine(traffic.take(), 30));

  const canary = await call<{ id: string }>('POST', `/servers/${SERVER}/deployments`, {
    version: '1.1.0',
    environment: ENV,
    strategy: 'canary',
    steps: [{ weight: 30, analyze: true }, { weight: 60, analyze: true }, { weight: 100 }],
    rollbackOnFailure: true,
    reason: 'second weather provider',
    ...DEMO_ANALYSIS,
  });
  say(`Canary rollout of 1.1.0 started (30 % → 60 % → 100 %, analysed at each step); open ${api}/`);

  const story = { alert: false, verdict: false, rolledBack: false, onStable: false };
  let lastWeights = '';
  let rolledBackAt = 0;
  let reportedAt = Date.now();
  for (let i = 0; i < 240 && !(story.alert && story.verdict && story.rolledBack); i++) {
    await sleep(1000);
    const weights = await rolloutWeights();
    if (weights !== lastWeights)
      say(`Rollout weights in production: ${weights} (the gateway places new sessions by them)`);
    lastWeights = weights;
    if (Date.now() - reportedAt >= 10_000) {
      say(gatewayLine(traffic.take(), Math.round((Date.now() - reportedAt) / 1000)));
      reportedAt = Date.now();
    }
    // The alert is held while the analysis runs; after the rollback one message says it is over.
    if (!story.alert && sinks.slackMessages().some((m) => /held during the rollout/.test(m.text)))
      story.alert = true;
    if (!story.verdict) {
      const { analyses } = await call<{ analyses: { verdict: string | null; status: string }[] }>(
        'GET',
        `/servers/${SERVER}/analyses?deployment=${canary.id}`,
      );
      const judged = analyses.find((analysis) => analysis.verdict === 'fail');
      if (judged) {
        story.verdict = true;
        say(`Canary analysis verdict: FAIL`);
        say(await releaseHealthLine());
      }
    }
    const deployment = await call<{ status: string }>('GET', `/servers/${SERVER}/deployments/${canary.id}`);
    if (!story.rolledBack && deployment.status === 'rolled-back') {
      story.rolledBack = true;
      rolledBackAt = Date.now();
      say('Pylee rolled 1.1.0 back: production is on 1.0.0 again');
    }
  }

  if (story.rolledBack) {
    // The gateway has the rollback within a second; what it answered until then, then 5 s after it.
    await sleep(Math.max(0, rolledBackAt + 2000 - Date.now()));
    say(gatewayLine(traffic.take(), Math.round((Date.now() - reportedAt) / 1000)));
    await sleep(5000);
    const after = traffic.take();
    const calls = total(after.calls);
    const stable = after.calls['1.0.0'] ?? 0;
    story.onStable = calls > 0 && stable === calls;
    say(
      `After the rollback the gateway answered ${calls} calls in 5 s: ` +
        (story.onStable
          ? `all from 1.0.0 (x-pylee-version), none from 1.1.0`
          : Object.entries(after.calls)
              .sort(([a], [b]) => byVersion(a, b))
              .map(([version, n]) => `${n} from ${version}`)
              .join(', ') || 'none'),
    );
  }

  say(await releaseHealthLine());
  const told = story.alert && story.verdict && story.rolledBack && story.onStable;
  say(
    told
      ? `Done in ${((Date.now() - started) / 1000).toFixed(0)} s: canary failed (Slack says what changed), rollback performed, the held alert told once without a page, the gateway serves 1.0.0.`
      : `Not everything happened in time: ${JSON.stringify(story)}; see ${path.join(dataDir, 'pylee.log')}`,
  );
  say(`Open ${api}/ and sign in with the token ${TOKEN}`);
  say(
    `  Overview → weather-mcp: the rollback; Releases: crash-free sessions per version; Compare: 1.0.0 vs 1.1.0; Alerts; Audit log.`,
  );
  if (exitWhenDone) await shutdown(told ? 0 : 1);
  say('Still running so you can look around; Ctrl-C stops everything.');
}

main().catch((error: unknown) => {
  say(`Demo failed: ${(error as Error).message}`);
  void shutdown(1);
});
