import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_FILE } from '#core/data-dir.ts';
import { createTestDatabase, POSTGRES_ADMIN_URL, type TestDatabase } from '#test/helpers/postgres.ts';
import {
  embeddedRedisProcesses,
  killLeftovers,
  platformEnv,
  startPylee,
  type PyleeProcess,
} from '#test/helpers/pylee-process.ts';
import { startSink, type Sink } from '#test/helpers/sink.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// The control plane under a hard kill, as a user meets it: a real `pylee start` in its own process
// group takes a stream of API mutations; the whole group (Pylee and its redis-server) gets SIGKILL
// while requests are in flight, right after notifications and a timed canary step were answered;
// the platform starts again on the same data dir. Everything answered 2xx must be there, the
// deliveries must all arrive and the canary must move on. Then a SIGTERM to the whole group, as a
// supervisor sends it, must stop it cleanly. One platform per store driver, restarted in place.

const TOKEN = 'durability-test-admin-token-0123456789';
const CONCURRENCY = 12;
/** Acknowledged mutations before the kill is set off (the stream keeps going until the kill lands). */
const KILL_AFTER = 300;
const BULK_SERVERS = ['bulk-0', 'bulk-1', 'bulk-2', 'bulk-3'];
const HOOK = '/hook';

interface Ack {
  kind: 'server' | 'version' | 'variable';
  key: string;
  server?: string;
}

interface Delivery {
  id: string;
  status: string;
  eventType: string;
}

interface Deployment {
  id: string;
  status: string;
  weight: number;
  currentStep: number | null;
}

/**
 * Sends mutations (servers, versions, org variables) from CONCURRENCY loops until the API stops
 * answering, recording each 2xx; `round` keeps the names of two streams apart.
 */
function mutationStream(apiUrl: string, round: number) {
  const acks: Ack[] = [];
  const refused: string[] = [];
  let next = 0;
  let inFlight = 0;
  let running = true;
  const one = async (): Promise<boolean> => {
    const m = next++;
    let request: { method: string; path: string; body: unknown; ack: Ack };
    if (m % 3 === 0) {
      const slug = `s${round}-${m}`;
      request = { method: 'POST', path: '/servers', body: { slug }, ack: { kind: 'server', key: slug } };
    } else if (m % 3 === 1) {
      const server = BULK_SERVERS[m % BULK_SERVERS.length] as string;
      const version = `${round}.0.${m}`;
      request = {
        method: 'POST',
        path: `/servers/${server}/versions`,
        body: { version, releaseNotes: `release ${m}` },
        ack: { kind: 'version', key: version, server },
      };
    } else {
      const name = `V${round}_${m}`;
      request = {
        method: 'PUT',
        path: `/variables/${name}`,
        body: { value: `value-${m}` },
        ack: { kind: 'variable', key: name },
      };
    }
    inFlight++;
    try {
      const response = await fetch(`${apiUrl}/api/v1${request.path}`, {
        method: request.method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(request.body),
      });
      await response.arrayBuffer();
      if (response.ok) acks.push(request.ack);
      else if (response.status !== 503) refused.push(`${request.method} ${request.path}: ${response.status}`);
      return true;
    } catch {
      return false; // the platform is gone
    } finally {
      inFlight--;
    }
  };
  const loops = Array.from({ length: CONCURRENCY }, async () => {
    while (running && (await one()));
  });
  return {
    acks,
    refused,
    get inFlight() {
      return inFlight;
    },
    async until(count: number) {
      while (acks.length < count) {
        if (!running) throw new Error('the mutation stream ended early');
        await sleep(5);
      }
    },
    /** Resolves once every loop has ended (the platform stopped answering, or {@link stop}). */
    done: Promise.all(loops),
    stop() {
      running = false;
    },
  };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

const drivers: { name: 'pglite' | 'postgres'; database: boolean }[] = [
  { name: 'pglite', database: false },
  ...(POSTGRES_ADMIN_URL ? [{ name: 'postgres' as const, database: true }] : []),
];

afterAll(async () => {
  await killLeftovers();
});

describe.each(drivers)('control plane on $name, its process group killed', ({ name, database }) => {
  let dataDir: string;
  let testDb: TestDatabase | undefined;
  let sink: Sink;
  let env: NodeJS.ProcessEnv;
  let platform: PyleeProcess;
  let stream: ReturnType<typeof mutationStream>;
  let inFlightAtKill = 0;
  let testDeliveries: string[] = [];
  let canary: Deployment;

  const call = async <T>(
    method: string,
    url: string,
    body?: unknown,
  ): Promise<{ status: number; body: T }> => {
    const response = await fetch(`${platform.apiUrl}/api/v1${url}`, {
      method,
      headers: {
        authorization: `Bearer ${TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : undefined) as T };
  };
  const ok = async <T>(method: string, url: string, body?: unknown): Promise<T> => {
    const result = await call<T>(method, url, body);
    expect(result.status, `${method} ${url}: ${JSON.stringify(result.body)}`).toBeLessThan(300);
    return result.body;
  };
  const deliveries = async () =>
    (await ok<{ deliveries: Delivery[] }>('GET', '/deliveries?limit=500')).deliveries;
  /** Waits until every delivery is delivered and the sink got a 2xx for each; returns them. */
  const allDelivered = () =>
    waitFor('every delivery to reach the sink', async () => {
      const all = await deliveries();
      const received = new Set(
        sink
          .on(HOOK)
          .filter((r) => r.status !== undefined && r.status < 300)
          .map((r) => r.headers['webhook-id']),
      );
      return all.every((d) => d.status === 'delivered' && received.has(d.id)) ? all : undefined;
    });

  /** Checks that every acknowledged mutation is in the store. */
  const expectAcknowledgedPresent = async (acks: Ack[]) => {
    const servers = new Set(
      (await ok<{ servers: { slug: string }[] }>('GET', '/servers')).servers.map((s) => s.slug),
    );
    const versions = new Map<string, Set<string>>();
    for (const server of BULK_SERVERS) {
      const list = await ok<{ versions: { version: string }[] }>('GET', `/servers/${server}/versions`);
      versions.set(server, new Set(list.versions.map((v) => v.version)));
    }
    const variables = new Set(
      (await ok<{ variables: { name: string }[] }>('GET', '/variables')).variables.map((v) => v.name),
    );
    const missing = acks.filter((ack) =>
      ack.kind === 'server'
        ? !servers.has(ack.key)
        : ack.kind === 'version'
          ? !versions.get(ack.server as string)?.has(ack.key)
          : !variables.has(ack.key),
    );
    expect(missing).toEqual([]);
    const audit = await ok<{ ok: boolean; checked: number }>('GET', '/audit/verify');
    expect(audit.ok).toBe(true);
    expect(audit.checked).toBeGreaterThanOrEqual(acks.length);
    return { servers: servers.size, audit: audit.checked };
  };

  beforeAll(async () => {
    dataDir = tempDir(`pylee-durability-${name}`);
    testDb = database ? await createTestDatabase() : undefined;
    sink = await startSink();
    env = platformEnv(dataDir, {
      PYLEE_BOOTSTRAP_TOKEN: TOKEN,
      PYLEE_ALLOW_PRIVATE_WEBHOOKS: 'true',
      PYLEE_RATE_LIMIT_MAX: '1000000',
      PYLEE_DATABASE_URL: testDb?.url,
    });
    platform = await startPylee({ env, processGroup: true });

    // A webhook channel for every event, bulk servers for versions, and a canary to interrupt.
    await ok('POST', '/channels', { name: 'sink', kind: 'webhook', url: `${sink.url}${HOOK}` });
    for (const slug of [...BULK_SERVERS, 'rollout']) await ok('POST', '/servers', { slug });
    for (const version of ['1.0.0', '1.1.0']) await ok('POST', '/servers/rollout/versions', { version });
    await ok('POST', '/servers/rollout/deployments', { version: '1.0.0', environment: 'development' });
    await allDelivered();
    const channelId = (await ok<{ channels: { id: string }[] }>('GET', '/channels')).channels[0]?.id;
    const sendTest = async () =>
      (await ok<{ deliveryId: string }>('POST', `/channels/${channelId}/test`)).deliveryId;

    stream = mutationStream(platform.apiUrl as string, 1);
    await stream.until(KILL_AFTER);
    // Two deliveries whose sends hang: certainly running when the kill lands.
    const sent = sink.on(HOOK).length;
    sink.script(HOOK, 'hang', 'hang');
    testDeliveries = [await sendTest(), await sendTest()];
    await sink.waitForRequests(HOOK, sent + 2);
    // Then more work recorded in Postgres and queued in Redis, killed right after its 2xx.
    const [created, ...more] = await Promise.all([
      ok<Deployment>('POST', '/servers/rollout/deployments', {
        version: '1.1.0',
        environment: 'development',
        strategy: 'canary',
        steps: [{ weight: 50, pause: '3s' }, { weight: 100 }],
      }),
      sendTest(),
      sendTest(),
    ]);
    canary = created;
    testDeliveries.push(...more);
    inFlightAtKill = stream.inFlight;
    const exit = await platform.killGroup('SIGKILL');
    expect(exit.signal).toBe('SIGKILL');
    await stream.done;

    platform = await startPylee({ env, processGroup: true });
  });

  afterAll(async () => {
    stream?.stop();
    await platform?.stop().catch(() => undefined);
    await killLeftovers();
    await sink?.close();
    await testDb?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('keeps every mutation answered 2xx, with the audit chain intact', async () => {
    expect(canary).toMatchObject({ status: 'paused', weight: 50 });
    expect(inFlightAtKill).toBeGreaterThan(0);
    expect(stream.refused).toEqual([]);
    expect(stream.acks.length).toBeGreaterThanOrEqual(KILL_AFTER);

    const found = await expectAcknowledgedPresent(stream.acks);

    process.stdout.write(
      `${name}: ${stream.acks.length} mutations acknowledged before the SIGKILL (${inFlightAtKill} in flight), ` +
        `all found after the restart; audit chain intact over ${found.audit} events\n`,
    );
  });

  it('sends every delivery recorded before the kill after the restart, keeping its webhook-id', async () => {
    const all = await allDelivered();

    const ids = new Set(all.map((d) => d.id));
    for (const id of testDeliveries) expect(ids).toContain(id);
    const sends = new Map<string, number>();
    for (const request of sink.on(HOOK)) {
      const id = String(request.headers['webhook-id']);
      sends.set(id, (sends.get(id) ?? 0) + 1);
    }
    const duplicates = [...sends.values()].filter((n) => n > 1).length;
    // The two sends that hung when the kill landed went out again after the restart, same webhook-id,
    // at once: the restart put the jobs the killed process was running back in line.
    expect(platform.logs()).toContainEqual(
      expect.objectContaining({ requeued: expect.objectContaining({ notify: expect.any(Number) }) }),
    );
    expect(duplicates).toBeGreaterThanOrEqual(2);
    process.stdout.write(
      `${name}: ${all.length} deliveries all delivered; ${sink.on(HOOK).length} requests, ` +
        `${duplicates} webhook-ids received more than once\n`,
    );
  });

  it('moves a canary paused when it was killed on to its next step after the restart', async () => {
    const done = await waitFor('the canary to finish its last step', async () => {
      const d = await ok<Deployment>('GET', `/servers/rollout/deployments/${canary.id}`);
      return d.status === 'succeeded' ? d : undefined;
    });

    expect(done).toMatchObject({ status: 'succeeded', weight: 100 });
  });

  it('stops on a SIGTERM to its whole process group with JSON lines only and exit code 0, losing nothing', async () => {
    const before = stream.acks;
    const more = mutationStream(platform.apiUrl as string, 2);
    await more.until(30);
    const channels = await ok<{ channels: { id: string }[] }>('GET', '/channels');
    const test = await ok<{ deliveryId: string }>('POST', `/channels/${channels.channels[0]?.id}/test`);

    const exit = await platform.killGroup('SIGTERM');
    await more.done;

    expect(exit, platform.stderr.join('\n')).toEqual({ code: 0, signal: null });
    expect(platform.stderr.filter((line) => line.trim() !== '')).toEqual([]);
    const notJson = platform.lines.filter((line) => {
      if (line.trim() === '') return false;
      try {
        return typeof JSON.parse(line) !== 'object';
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
    const messages = platform.logs().map((log) => log.msg);
    expect(messages).toContain('shutting down');
    expect(messages).toContain('stopped');
    expect(embeddedRedisProcesses(dataDir)).toEqual([]);
    expect(fs.existsSync(path.join(dataDir, LOCK_FILE))).toBe(false);

    platform = await startPylee({ env, processGroup: true });
    await expectAcknowledgedPresent([...before, ...more.acks]);
    expect(more.refused).toEqual([]);
    await allDelivered();
    expect(sink.on(HOOK).some((r) => r.headers['webhook-id'] === test.deliveryId)).toBe(true);
  });
});
