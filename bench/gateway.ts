// MCP gateway overhead: the same MCP server (the TypeScript SDK's McpServer over its streamable
// HTTP transport, with sessions, answering in SSE as the SDK does by default) called three ways
// in one run: directly, through Pylee's gateway (a real `pylee start --role all` process,
// embedded stores, token auth, sealed sessions, a telemetry row per exchange), and through
// Debian's haproxy (`mode http`, keep-alive, no logging). The client opens SESSIONS MCP sessions
// per path by a raw initialize + notifications/initialized, then sends tools/call over keep-alive
// undici connections: a latency pass at concurrency 1 (the added p50 there is what the ≤ 1 ms
// target is about), then a throughput pass at CONCURRENCY. Added latency = path − direct.
//
// The MCP server is a child process (this file with `upstream`), so the client's load does not
// share its event loop; the client runs on this process's main thread. Everything shares this
// machine's cores (client, MCP server, the proxy under test and, for Pylee, chDB and redis-server),
// so the CPU each process spent per call is printed beside the rates.
//
// Run: npm run bench:gateway   (prints a table, writes bench/results/gateway.json)
//   BENCH_SESSIONS (16), BENCH_CONCURRENCY (16), BENCH_WARMUP_SECONDS (5), BENCH_SECONDS (10),
//   BENCH_LATENCY_WARMUP_SECONDS (2), BENCH_LATENCY_SECONDS (5), BENCH_ROUNDS (5: the measured
//   seconds of each pass are split into rounds that take the three paths in turn),
//   BENCH_GATEWAY_LOG_LEVEL (warn: no request logs, as haproxy has none; Pylee's default is info),
//   BENCH_GATEWAY_CPU_PROF (a directory: Pylee runs with --cpu-prof and writes its profile there).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { Pool } from 'undici';
import { z } from 'zod';
import { sessionHandler } from '#test/gateway/upstream.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 16);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const WARMUP_S = Number(process.env.BENCH_WARMUP_SECONDS ?? 5);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const LATENCY_WARMUP_S = Number(process.env.BENCH_LATENCY_WARMUP_SECONDS ?? 2);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 5);
const GATEWAY_LOG_LEVEL = process.env.BENCH_GATEWAY_LOG_LEVEL ?? 'warn';
const CPU_PROF = process.env.BENCH_GATEWAY_CPU_PROF;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const IDLE_SECONDS = 3;
const CORES = os.availableParallelism();
const PROTOCOL = '2025-06-18';
const TOKEN = 'pyl_bench-gateway-bootstrap-token-0000';
const SERVER = 'bench-echo';
const HAPROXY = '/usr/sbin/haproxy';
const TARGETS = { addedP50Ms: 1, throughputShareOfHaproxy: 0.5 };

// ---------------------------------------------------------------------------------------------
// The MCP server (child process)

/** One SDK McpServer per session with a trivial `echo` tool; prints its URL as a JSON line. */
async function serveUpstream(): Promise<void> {
  const sessions = new Map<string, StreamableHTTPServerTransport>();
  const build = () => {
    const server = new McpServer({ name: 'bench-echo', version: '1.0.0' });
    server.registerTool(
      'echo',
      { description: 'Says the text back', inputSchema: { text: z.string() } },
      async ({ text }) => ({ content: [{ type: 'text', text }] }),
    );
    return server;
  };
  const httpServer = http.createServer(sessionHandler(sessions, build));
  // Longer than every client's idle timeout, so no proxy races the server closing an idle connection.
  httpServer.keepAliveTimeout = 120_000;
  await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
  const { port } = httpServer.address() as net.AddressInfo;
  process.on('SIGTERM', () => {
    httpServer.closeAllConnections();
    httpServer.close(() => process.exit(0));
  });
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${port}/mcp` })}\n`);
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** CPU milliseconds (user + system, all threads) a process has used so far; 0 once it is gone. */
function cpuMsOf(pid: number | undefined, thread?: number): number {
  if (pid === undefined) return 0;
  try {
    const file = thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`;
    const stat = fs.readFileSync(file, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS) * 1000;
  } catch {
    return 0;
  }
}

/** CPU milliseconds of one thread (the main thread: tid = pid). */
const threadCpuMsOf = (pid: number | undefined) => (pid === undefined ? 0 : cpuMsOf(pid, pid));

/** Jiffies of the whole machine so far (every process, this bench's and anyone else's). */
function machineTicks(): { busy: number; total: number } {
  const cpu = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user already)
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] = cpu;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** Pids of redis-server processes whose parent is `parent` (Pylee's embedded Redis). */
function redisChildrenOf(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && name.startsWith('redis-server')) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

const quantile = (sorted: Float64Array, q: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
const fmt = (x: number) => Math.round(x).toLocaleString('en-US');
const say = (line: string) => process.stdout.write(`${line}\n`);

function ensureHaproxy(): string {
  if (!fs.existsSync(HAPROXY)) {
    say('haproxy is missing: apt-get install -y -qq haproxy');
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    const install = spawnSync('apt-get', ['install', '-y', '-qq', 'haproxy'], { stdio: 'inherit' });
    if (update.status !== 0 || install.status !== 0 || !fs.existsSync(HAPROXY))
      throw new Error('could not install haproxy (apt-get install -y haproxy, as root)');
  }
  const version = spawnSync(HAPROXY, ['-v'], { encoding: 'utf8' }).stdout;
  return /version (\S+)/.exec(version)?.[1] ?? 'unknown';
}

/** Waits for one JSON line on the child's stdout. */
async function firstJsonLine<T>(child: ChildProcess, what: string): Promise<T> {
  const lines = createInterface({ input: child.stdout! });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`${what} exited (${String(code)}) before it printed its address`);
  });
  const line = (async () => {
    for await (const l of lines) if (l.startsWith('{')) return JSON.parse(l) as T;
    throw new Error(`${what} closed its stdout before it printed its address`);
  })();
  return Promise.race([line, exited]);
}

async function waitOk(url: string, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await fetch(url).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} (${url}) did not answer 200 within ${timeoutMs} ms`);
}

async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM') {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------
// The client: raw JSON-RPC over keep-alive undici connections

interface Path {
  name: 'direct' | 'haproxy' | 'gateway';
  origin: string;
  path: string;
  headers: Record<string, string>;
  /** Processes whose CPU counts as this path's proxy. */
  proxyPids: () => number[];
}

interface Session {
  id: string;
  headers: Record<string, string>;
}

const ACCEPT = 'application/json, text/event-stream';

async function post(
  pool: Pool,
  target: Path,
  headers: Record<string, string>,
  body: string,
): Promise<{ status: number; session: string | undefined; text: string }> {
  const res = await pool.request({
    path: target.path,
    method: 'POST',
    headers: { ...target.headers, ...headers, 'content-type': 'application/json', accept: ACCEPT },
    body,
  });
  const text = await res.body.text();
  const session = res.headers['mcp-session-id'];
  return { status: res.statusCode, session: typeof session === 'string' ? session : undefined, text };
}

/** initialize + notifications/initialized, raw; returns the session's headers for later calls. */
async function openSession(pool: Pool, target: Path, n: number): Promise<Session> {
  const init = await post(
    pool,
    target,
    {},
    JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: PROTOCOL,
        capabilities: {},
        clientInfo: { name: 'bench-gateway', version: String(n) },
      },
    }),
  );
  if (init.status !== 200 || !init.session || !init.text.includes('"result"'))
    throw new Error(`${target.name}: initialize answered ${init.status}: ${init.text.slice(0, 300)}`);
  const headers = { 'mcp-session-id': init.session, 'mcp-protocol-version': PROTOCOL };
  const initialized = await post(
    pool,
    target,
    headers,
    JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  );
  if (initialized.status !== 202)
    throw new Error(`${target.name}: notifications/initialized answered ${initialized.status}`);
  return { id: init.session, headers };
}

/** CPU milliseconds so far of the client (this process), the MCP server and the path's proxy. */
interface CpuSample {
  client: number;
  upstream: number;
  proxy: number;
}

function cpuSample(target: Path, upstreamPid: number): CpuSample {
  const usage = process.cpuUsage();
  return {
    client: (usage.user + usage.system) / 1000,
    upstream: cpuMsOf(upstreamPid),
    proxy: target.proxyPids().reduce((sum, pid) => sum + cpuMsOf(pid), 0),
  };
}

const cpuDelta = (a: CpuSample, b: CpuSample): CpuSample => ({
  client: b.client - a.client,
  upstream: b.upstream - a.upstream,
  proxy: b.proxy - a.proxy,
});

/** One stretch of tools/call at a fixed concurrency. */
interface Burst {
  wallMs: number;
  latencies: Float64Array;
  errors: number;
  firstError: string | undefined;
  elu: { active: number; idle: number };
  cpu: CpuSample;
  /** CPU ms of the proxy's main thread (Pylee's event loop). */
  proxyMainMs: number;
  machine: { busy: number; total: number };
}

let nextId = 1;

/** tools/call from `concurrency` callers (caller w on session w mod SESSIONS) for `ms`. */
async function burst(
  pool: Pool,
  target: Path,
  sessions: Session[],
  concurrency: number,
  ms: number,
  upstreamPid: number,
): Promise<Burst> {
  let latencies = new Float64Array(1 << 14);
  let calls = 0;
  let errors = 0;
  let firstError: string | undefined;
  const cpuBefore = cpuSample(target, upstreamPid);
  const mainBefore = threadCpuMsOf(target.proxyPids()[0]);
  const machineBefore = machineTicks();
  const eluBefore = performance.eventLoopUtilization();
  const began = performance.now();
  const deadline = began + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      const session = sessions[w % sessions.length]!;
      while (performance.now() < deadline) {
        const id = nextId++;
        const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello ${id}"}}}`;
        const start = performance.now();
        let failure: string | undefined;
        try {
          const res = await post(pool, target, session.headers, body);
          if (res.status !== 200 || !res.text.includes(`"text":"hello ${id}"`))
            failure = `HTTP ${res.status}: ${res.text.slice(0, 200)}`;
        } catch (error) {
          failure = String(error);
        }
        const elapsed = performance.now() - start;
        if (failure !== undefined) {
          errors++;
          firstError ??= failure;
          continue;
        }
        if (calls === latencies.length) {
          const grown = new Float64Array(latencies.length * 2);
          grown.set(latencies);
          latencies = grown;
        }
        latencies[calls++] = elapsed;
      }
    }),
  );
  const wallMs = performance.now() - began;
  const elu = performance.eventLoopUtilization(eluBefore);
  return {
    wallMs,
    latencies: latencies.subarray(0, calls),
    errors,
    firstError,
    elu: { active: elu.active, idle: elu.idle },
    cpu: cpuDelta(cpuBefore, cpuSample(target, upstreamPid)),
    proxyMainMs: threadCpuMsOf(target.proxyPids()[0]) - mainBefore,
    machine: (({ busy, total }) => ({
      busy: busy - machineBefore.busy,
      total: total - machineBefore.total,
    }))(machineTicks()),
  };
}

interface Pass {
  concurrency: number;
  rounds: number;
  seconds: number;
  calls: number;
  errors: number;
  firstError: string | undefined;
  callsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  /** Event-loop utilization of the client thread while it called this path. */
  clientEventLoopUtilization: number;
  /** CPU microseconds per call, per process, as measured. */
  cpuMicrosPerCall: CpuSample;
  /** The same, less what each process spends idle (Pylee's schedulers and chDB run without traffic). */
  cpuMicrosPerCallAboveIdle: CpuSample;
  /** CPU of the proxy's main thread (Pylee's event loop; haproxy's first thread) per second of wall time. */
  proxyMainThreadShareOfCore: number;
  /** Busy share of all the machine's cores, whoever used them (other load on a shared machine counts). */
  machineBusyShare: number;
}

/** The measured bursts of one path, as one figure. `idle`: CPU ms per second of each process at rest. */
function summarize(bursts: Burst[], concurrency: number, idle: CpuSample): Pass {
  const calls = bursts.reduce((n, b) => n + b.latencies.length, 0);
  const all = new Float64Array(calls);
  let at = 0;
  for (const b of bursts) {
    all.set(b.latencies, at);
    at += b.latencies.length;
  }
  const sorted = all.sort();
  let sum = 0;
  for (const x of sorted) sum += x;
  const wallMs = bursts.reduce((n, b) => n + b.wallMs, 0);
  const cpu = bursts.reduce(
    (c, b) => ({
      client: c.client + b.cpu.client,
      upstream: c.upstream + b.cpu.upstream,
      proxy: c.proxy + b.cpu.proxy,
    }),
    { client: 0, upstream: 0, proxy: 0 },
  );
  const perCall = (ms: number) => (calls > 0 ? round((Math.max(0, ms) * 1000) / calls, 0) : 0);
  const active = bursts.reduce((n, b) => n + b.elu.active, 0);
  const idleMs = bursts.reduce((n, b) => n + b.elu.idle, 0);
  return {
    concurrency,
    rounds: bursts.length,
    seconds: round(wallMs / 1000, 2),
    calls,
    errors: bursts.reduce((n, b) => n + b.errors, 0),
    firstError: bursts.find((b) => b.firstError)?.firstError,
    callsPerSecond: round((calls / wallMs) * 1000, 1),
    latencyMs: {
      p50: round(quantile(sorted, 0.5)),
      p90: round(quantile(sorted, 0.9)),
      p99: round(quantile(sorted, 0.99)),
      max: round(quantile(sorted, 1)),
      mean: round(calls > 0 ? sum / calls : 0),
    },
    clientEventLoopUtilization: round(active / (active + idleMs), 2),
    cpuMicrosPerCall: {
      client: perCall(cpu.client),
      upstream: perCall(cpu.upstream),
      proxy: perCall(cpu.proxy),
    },
    cpuMicrosPerCallAboveIdle: {
      client: perCall(cpu.client - (idle.client * wallMs) / 1000),
      upstream: perCall(cpu.upstream - (idle.upstream * wallMs) / 1000),
      proxy: perCall(cpu.proxy - (idle.proxy * wallMs) / 1000),
    },
    proxyMainThreadShareOfCore: round(bursts.reduce((n, b) => n + b.proxyMainMs, 0) / wallMs, 2),
    machineBusyShare: round(
      bursts.reduce((n, b) => n + b.machine.busy, 0) / bursts.reduce((n, b) => n + b.machine.total, 0),
      2,
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// Pylee and haproxy

async function api<T>(apiUrl: string, method: string, url: string, body?: object): Promise<T> {
  const res = await fetch(`${apiUrl}/api/v1${url}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${url} answered ${res.status}: ${text}`);
  return JSON.parse(text) as T;
}

async function startPylee(dir: string) {
  const apiPort = await freePort();
  const otlpPort = await freePort();
  const gatewayPort = await freePort();
  const dataDir = path.join(dir, 'pylee');
  const log = fs.openSync(path.join(dir, 'pylee.log'), 'a');
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env))
    if (!name.startsWith('PYLEE_') && name !== 'NODE_OPTIONS') env[name] = value;
  Object.assign(env, {
    PYLEE_DATA_DIR: dataDir,
    PYLEE_API_PORT: String(apiPort),
    PYLEE_OTLP_PORT: String(otlpPort),
    PYLEE_GATEWAY_PORT: String(gatewayPort),
    PYLEE_HOST: '127.0.0.1',
    PYLEE_LOG_LEVEL: GATEWAY_LOG_LEVEL,
    PYLEE_BOOTSTRAP_TOKEN: TOKEN,
    PYLEE_RATE_LIMIT_MAX: '1000000000',
    PYLEE_GATEWAY_RATE_LIMIT_MAX: '1000000000',
  });
  const nodeArgs = CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(CPU_PROF)}`] : [];
  const child = spawn(process.execPath, [...nodeArgs, 'cli/main.ts', 'start', '--role', 'all'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(
      `pylee exited (${String(code)}) while starting:\n${fs.readFileSync(path.join(dir, 'pylee.log'), 'utf8').slice(-3000)}`,
    );
  });
  await Promise.race([
    Promise.all([
      waitOk(`${apiUrl}/readyz`, 120_000, 'pylee api'),
      waitOk(`${gatewayUrl}/readyz`, 120_000, 'pylee gateway'),
    ]),
    exited,
  ]);
  exited.catch(() => undefined);
  return { child, apiUrl, gatewayUrl };
}

async function startHaproxy(dir: string, upstream: URL) {
  const port = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  // No `log` line: haproxy logs nothing, as the gateway logs no requests at `warn`.
  fs.writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 4096',
      'defaults',
      '  mode http',
      '  option http-keep-alive',
      '  timeout connect 5s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  timeout http-keep-alive 60s',
      'frontend mcp',
      `  bind 127.0.0.1:${port}`,
      '  default_backend mcp',
      'backend mcp',
      `  server upstream ${upstream.hostname}:${upstream.port}`,
      '',
    ].join('\n'),
  );
  const check = spawnSync(HAPROXY, ['-c', '-q', '-f', cfg], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy rejected its config:\n${check.stdout}${check.stderr}`);
  const child = spawn(HAPROXY, ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (up) break;
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`haproxy did not start listening on ${port}:\n${stderr}`);
    await sleep(25);
  }
  return { child, url: `http://127.0.0.1:${port}`, config: fs.readFileSync(cfg, 'utf8') };
}

// ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = performance.now();
  const loadStart = os.loadavg().map((x) => round(x, 2));
  const haproxyVersion = ensureHaproxy();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-bench-gateway-'));
  let upstream: ChildProcess | undefined;
  let haproxy: ChildProcess | undefined;
  let pylee: ChildProcess | undefined;
  const pools: Pool[] = [];
  try {
    upstream = spawn(process.execPath, [path.join(ROOT, 'bench/gateway.ts'), 'upstream'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const upstreamUrl = new URL((await firstJsonLine<{ url: string }>(upstream, 'the MCP server')).url);
    const upstreamPid = upstream.pid!;
    say(`MCP server (child process ${upstreamPid}) on ${upstreamUrl.href}`);

    const hap = await startHaproxy(dir, upstreamUrl);
    haproxy = hap.child;
    say(`haproxy ${haproxyVersion} on ${hap.url}`);

    const t0 = performance.now();
    const py = await startPylee(dir);
    pylee = py.child;
    say(`pylee start --role all ready in ${fmt(performance.now() - t0)} ms; gateway on ${py.gatewayUrl}`);
    await api(py.apiUrl, 'POST', '/servers', { slug: SERVER });
    await api(py.apiUrl, 'POST', `/servers/${SERVER}/versions`, {
      version: '1.0.0',
      remotes: [{ type: 'streamable-http', url: upstreamUrl.href }],
    });
    await api(py.apiUrl, 'POST', `/servers/${SERVER}/deployments`, {
      version: '1.0.0',
      environment: 'development',
    });
    const { token } = await api<{ token: string }>(py.apiUrl, 'POST', '/tokens', {
      name: 'bench-gateway',
      permissions: ['connect'],
    });
    const pyleePid = pylee.pid!;
    const redisPids = redisChildrenOf(pyleePid);
    say(`pylee pid ${pyleePid}, its redis-server pid ${redisPids.join(', ') || '(not found)'}`);

    const paths: Path[] = [
      {
        name: 'direct',
        origin: upstreamUrl.origin,
        path: upstreamUrl.pathname,
        headers: {},
        proxyPids: () => [],
      },
      {
        name: 'haproxy',
        origin: hap.url,
        path: upstreamUrl.pathname,
        headers: {},
        proxyPids: () => [haproxy!.pid!],
      },
      {
        name: 'gateway',
        origin: py.gatewayUrl,
        path: `/default/${SERVER}/development/mcp`,
        headers: { authorization: `Bearer ${token}` },
        proxyPids: () => [pyleePid, ...redisPids],
      },
    ];

    // Sessions: SESSIONS per path, each on its own keep-alive pool of CONCURRENCY connections.
    const sessions = new Map<Path['name'], Session[]>();
    const poolOf = new Map<Path['name'], Pool>();
    for (const target of paths) {
      const pool = new Pool(target.origin, {
        connections: CONCURRENCY,
        pipelining: 1,
        keepAliveTimeout: 60_000,
        keepAliveMaxTimeout: 120_000,
      });
      pools.push(pool);
      poolOf.set(target.name, pool);
      // The deployment reaches the gateway's routing within a moment of the API answering.
      const deadline = Date.now() + 15_000;
      let first: Session | undefined;
      while (!first) {
        try {
          first = await openSession(pool, target, 0);
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await sleep(100);
        }
      }
      const rest = await Promise.all(
        Array.from({ length: SESSIONS - 1 }, (_, i) => openSession(pool, target, i + 1)),
      );
      sessions.set(target.name, [first, ...rest]);
    }
    say(`${SESSIONS} MCP sessions open on each path\n`);

    // At rest: what each process spends with no traffic (Pylee's schedulers, chDB), per second.
    const idle = new Map<Path['name'], CpuSample>();
    {
      const before = paths.map((target) => cpuSample(target, upstreamPid));
      const t = performance.now();
      await sleep(IDLE_SECONDS * 1000);
      const s = (performance.now() - t) / 1000;
      paths.forEach((target, i) => {
        const d = cpuDelta(before[i]!, cpuSample(target, upstreamPid));
        idle.set(target.name, { client: d.client / s, upstream: d.upstream / s, proxy: d.proxy / s });
      });
    }

    // Each pass: a warm-up per path, then ROUNDS rounds that take the paths in turn (in a rotating
    // order), so a change in the machine's other load falls on all three alike.
    const runs: Record<string, { latency?: Pass; throughput?: Pass }> = {};
    // JSON-RPC requests sent through the gateway: every initialize and every tools/call.
    let gatewayRequests = SESSIONS;
    for (const [pass, concurrency, warmup, seconds] of [
      ['latency', 1, LATENCY_WARMUP_S, LATENCY_SECONDS],
      ['throughput', CONCURRENCY, WARMUP_S, SECONDS],
    ] as const) {
      const bursts = new Map<Path['name'], Burst[]>(paths.map((t) => [t.name, []]));
      const run = (target: Path, ms: number) =>
        burst(poolOf.get(target.name)!, target, sessions.get(target.name)!, concurrency, ms, upstreamPid);
      for (const target of paths) {
        const warm = await run(target, warmup * 1000);
        if (target.name === 'gateway') gatewayRequests += warm.latencies.length + warm.errors;
      }
      for (let round = 0; round < ROUNDS; round++) {
        for (let k = 0; k < paths.length; k++) {
          const target = paths[(round + k) % paths.length]!;
          bursts.get(target.name)!.push(await run(target, (seconds * 1000) / ROUNDS));
        }
      }
      for (const target of paths) {
        const result = summarize(bursts.get(target.name)!, concurrency, idle.get(target.name)!);
        (runs[target.name] ??= {})[pass] = result;
        say(
          `${pass.padEnd(10)} ${target.name.padEnd(7)} c=${String(concurrency).padEnd(2)} ${fmt(result.callsPerSecond).padStart(6)} calls/s  p50 ${result.latencyMs.p50.toFixed(3)} ms  p99 ${result.latencyMs.p99.toFixed(3)} ms  errors ${result.errors}${result.firstError ? ` (${result.firstError})` : ''}`,
        );
      }
    }

    // The gateway's own record of the exchanges (its writer flushes about once a second).
    await sleep(3000);
    const summary = await api<Record<string, unknown>>(
      py.apiUrl,
      'GET',
      `/servers/${SERVER}/versions/1.0.0/summary?environment=development`,
    ).catch((error: unknown) => ({ error: String(error) }));
    const recorded = Number((summary as { requests?: unknown }).requests ?? NaN);
    for (const pass of ['latency', 'throughput'] as const)
      gatewayRequests += (runs.gateway?.[pass]?.calls ?? 0) + (runs.gateway?.[pass]?.errors ?? 0);

    // Figures.
    const d = runs.direct!;
    const h = runs.haproxy!;
    const g = runs.gateway!;
    const added = (p: Pass, ref: Pass) => ({
      p50: round(p.latencyMs.p50 - ref.latencyMs.p50),
      p99: round(p.latencyMs.p99 - ref.latencyMs.p99),
    });
    const figures = {
      latency: {
        haproxyAddedMs: added(h.latency!, d.latency!),
        gatewayAddedMs: added(g.latency!, d.latency!),
      },
      throughput: {
        haproxyAddedMs: added(h.throughput!, d.throughput!),
        gatewayAddedMs: added(g.throughput!, d.throughput!),
        gatewayShareOfHaproxy: round(g.throughput!.callsPerSecond / h.throughput!.callsPerSecond, 2),
        gatewayShareOfDirect: round(g.throughput!.callsPerSecond / d.throughput!.callsPerSecond, 2),
        haproxyShareOfDirect: round(h.throughput!.callsPerSecond / d.throughput!.callsPerSecond, 2),
      },
    };
    const errors = Object.values(runs).reduce(
      (sum, r) => sum + (r.latency?.errors ?? 0) + (r.throughput?.errors ?? 0),
      0,
    );
    const met = {
      addedP50Ms: figures.latency.gatewayAddedMs.p50 <= TARGETS.addedP50Ms,
      throughputShareOfHaproxy: figures.throughput.gatewayShareOfHaproxy >= TARGETS.throughputShareOfHaproxy,
    };

    type Row = [string, string, string, string, string, string, string, string, string, string];
    const header: Row = [
      'path',
      'calls/s',
      'p50 ms',
      'p99 ms',
      '+p50 ms',
      '+p99 ms',
      'CPU µs/call',
      'proxy loop',
      'client ELU',
      'machine busy',
    ];
    const rows: Row[] = [];
    for (const [label, pass] of [
      ['latency', 'latency'],
      ['throughput', 'throughput'],
    ] as const) {
      for (const [name, r] of [
        ['direct', d],
        ['haproxy', h],
        ['gateway', g],
      ] as const) {
        const p = r[pass]!;
        const a = added(p, d[pass]!);
        const cpu = p.cpuMicrosPerCallAboveIdle;
        rows.push([
          `${label} c=${p.concurrency}: ${name}`,
          fmt(p.callsPerSecond),
          p.latencyMs.p50.toFixed(3),
          p.latencyMs.p99.toFixed(3),
          name === 'direct' ? '' : a.p50.toFixed(3),
          name === 'direct' ? '' : a.p99.toFixed(3),
          `${cpu.client}/${cpu.upstream}${name === 'direct' ? '' : `/${cpu.proxy}`}`,
          name === 'direct' ? '' : p.proxyMainThreadShareOfCore.toFixed(2),
          p.clientEventLoopUtilization.toFixed(2),
          p.machineBusyShare.toFixed(2),
        ]);
      }
    }
    const widths = header.map((x, i) => Math.max(x.length, ...rows.map((r) => r[i]!.length)));
    const line = (r: Row) =>
      r
        .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
        .join('  ')
        .trimEnd();
    say('');
    say(line(header));
    for (const r of rows) say(line(r));
    say('');
    const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
    say(
      `gateway added p50 at concurrency 1: ${figures.latency.gatewayAddedMs.p50.toFixed(3)} ms (haproxy ${figures.latency.haproxyAddedMs.p50.toFixed(3)} ms); target ≤ ${TARGETS.addedP50Ms} ms: ${verdict(met.addedP50Ms)}`,
    );
    say(
      `gateway throughput at concurrency ${CONCURRENCY}: ${figures.throughput.gatewayShareOfHaproxy.toFixed(2)} × haproxy's (${fmt(g.throughput!.callsPerSecond)} vs ${fmt(h.throughput!.callsPerSecond)} calls/s; direct ${fmt(d.throughput!.callsPerSecond)}); target ≥ ${TARGETS.throughputShareOfHaproxy}: ${verdict(met.throughputShareOfHaproxy)}`,
    );
    say(
      `the gateway recorded ${Number.isFinite(recorded) ? fmt(recorded) : '?'} requests of the ${fmt(gatewayRequests)} sent through it (initialize and tools/call, warm-up included); ${errors} failed calls in all`,
    );
    const runtimeS = round((performance.now() - started) / 1000, 1);
    say(
      `\nCPU µs/call = client / MCP server / proxy process (gateway: pylee with chDB, plus its redis-server), above each one's CPU at rest (pylee at rest: ${fmt(idle.get('gateway')!.proxy)} ms/s); proxy loop = CPU of the proxy's main thread (Pylee's event loop) per second; machine busy = share of all cores busy, whoever used them. ${CORES} cores shared by all of them, MCP server in a child process, client on this thread, node ${process.version}, pylee log level ${GATEWAY_LOG_LEVEL}, 1-minute load average ${loadStart[0]} at the start and ${round(os.loadavg()[0]!, 2)} at the end, ${runtimeS} s`,
    );

    fs.mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    fs.writeFileSync(
      path.join(ROOT, 'bench/results/gateway.json'),
      JSON.stringify(
        {
          bench: 'gateway',
          at: new Date().toISOString(),
          machine: {
            cpus: CORES,
            cpu: os.cpus()[0]?.model,
            memoryBytes: os.totalmem(),
            node: process.version,
            haproxy: haproxyVersion,
          },
          config: {
            sessions: SESSIONS,
            concurrency: CONCURRENCY,
            warmupSeconds: WARMUP_S,
            seconds: SECONDS,
            latencyWarmupSeconds: LATENCY_WARMUP_S,
            latencySeconds: LATENCY_SECONDS,
            protocolVersion: PROTOCOL,
            mcpServer:
              'child process: SDK McpServer + StreamableHTTPServerTransport (sessions, SSE answers), one tool `echo`',
            client:
              'this process, main thread: raw JSON-RPC over an undici Pool per path (keep-alive, pipelining 1)',
            pyleeLogLevel: GATEWAY_LOG_LEVEL,
            haproxyConfig: hap.config,
          },
          loadAverage: { start: loadStart, end: os.loadavg().map((x) => round(x, 2)) },
          idleCpuMsPerSecond: Object.fromEntries(
            [...idle].map(([name, c]) => [
              name,
              { client: round(c.client, 1), upstream: round(c.upstream, 1), proxy: round(c.proxy, 1) },
            ]),
          ),
          runs,
          figures,
          gatewayRecordedRequests: Number.isFinite(recorded) ? recorded : null,
          gatewaySentRequests: gatewayRequests,
          errors,
          targets: TARGETS,
          met,
          runtimeSeconds: runtimeS,
          table: rows.map((r) => Object.fromEntries(header.map((x, i) => [x, r[i]]))),
        },
        null,
        2,
      ) + '\n',
    );
  } finally {
    await Promise.all(pools.map((pool) => pool.close().catch(() => undefined)));
    await stopChild(pylee);
    await stopChild(haproxy);
    await stopChild(upstream);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === 'upstream') await serveUpstream();
else await main();
