import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { StartupError } from '../../core/errors.ts';
import { createLogger } from '../../core/logger.ts';
import { socketPathFor, startLocalRedis, type LocalRedis } from '../../core/queue/local-redis.ts';
import { openRedis, type RedisStore } from '../../core/queue/redis.ts';

const logger = createLogger('silent');

const tempDirs: string[] = [];
const stores: RedisStore[] = [];
const servers: LocalRedis[] = [];
const children: ChildProcess[] = [];

function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pylee-redis-test-'));
  tempDirs.push(dir);
  return dir;
}

async function open(config: { redisUrl?: string; dataDir: string }): Promise<RedisStore> {
  const store = await openRedis({ redisUrl: config.redisUrl, dataDir: config.dataDir }, logger);
  stores.push(store);
  return store;
}

async function serverPid(store: RedisStore): Promise<number> {
  const info = await store.client.info('server');
  return Number(/process_id:(\d+)/.exec(info)?.[1]);
}

async function eventually<T>(attempt: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await attempt();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A plain redis-server on a TCP port, standing in for a Redis that Pylee did not start. */
async function startExternalRedis(): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    '/usr/bin/redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--dir',
      tempDir(),
      '--loglevel',
      'warning',
    ],
    { stdio: 'ignore' },
  );
  children.push(child);
  await eventually(
    () =>
      new Promise<void>((resolve, reject) => {
        const socket = net.createConnection({ port, host: '127.0.0.1' }, () => {
          socket.destroy();
          resolve();
        });
        socket.once('error', reject);
      }),
  );
  return { url: `redis://127.0.0.1:${port}`, child };
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
  await Promise.all(servers.splice(0).map((server) => server.stop()));
  await Promise.all(
    children.splice(0).map((child) => {
      child.kill('SIGKILL');
      return exited(child);
    }),
  );
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('embedded redis-server', () => {
  it('starts an embedded redis-server on a unix socket with AOF in the data dir', async () => {
    const dataDir = tempDir();
    const store = await open({ dataDir });

    expect(store.driver).toBe('embedded');
    expect(store.client.options.path).toBe(path.join(dataDir, 'redis', 'redis.sock'));
    expect(await store.client.config('GET', 'appendonly')).toEqual(['appendonly', 'yes']);
    expect(await store.client.config('GET', 'dir')).toEqual(['dir', path.join(dataDir, 'redis')]);
    expect(await store.client.config('GET', 'port')).toEqual(['port', '0']);
    await store.client.set('greeting', 'hello');
    expect(await store.client.get('greeting')).toBe('hello');
    await expect(store.ping()).resolves.toBeUndefined();
    expect(fs.existsSync(path.join(dataDir, 'redis', 'appendonlydir'))).toBe(true);
  });

  it('keeps data across a stop and restart of the embedded server', async () => {
    const dataDir = tempDir();
    const first = await open({ dataDir });
    await first.client.set('survivor', 'still here');
    await first.close();

    const second = await open({ dataDir });
    expect(await second.client.get('survivor')).toBe('still here');
  });

  it('restarts redis-server when it dies', async () => {
    const dataDir = tempDir();
    const store = await open({ dataDir });
    const worker = store.connection();
    await store.client.set('before-crash', 'kept');
    // appendfsync everysec: give the AOF a second to reach the disk before the crash.
    await sleep(1_500);
    const pid = await serverPid(store);

    process.kill(pid, 'SIGKILL');

    const newPid = await eventually(async () => {
      await store.ping();
      const current = await serverPid(store);
      if (current === pid) throw new Error('still the old server');
      return current;
    });
    expect(newPid).not.toBe(pid);
    expect(await store.client.get('before-crash')).toBe('kept');
    expect(await eventually(() => worker.get('before-crash'))).toBe('kept');
  });

  it('reports a clear error when redis-server is missing', async () => {
    const error = await startLocalRedis({
      dir: tempDir(),
      logger,
      bin: 'redis-server-that-does-not-exist',
    }).then(
      () => undefined,
      (err: unknown) => err,
    );

    expect(error).toBeInstanceOf(StartupError);
    expect((error as Error).message).toMatch(/apt-get install redis-server/);
    expect((error as Error).message).toMatch(/PYLEE_REDIS_URL/);
  });

  it('uses a socket in the temp dir when the data dir path is too long for a unix socket', async () => {
    const dir = path.join(tempDir(), 'a'.repeat(60), 'b'.repeat(60));
    expect(dir.length).toBeGreaterThan(110);

    const server = await startLocalRedis({ dir, logger });
    servers.push(server);

    expect(Buffer.byteLength(server.socketPath)).toBeLessThan(108);
    expect(server.socketPath.startsWith(os.tmpdir())).toBe(true);
    expect(server.url).toBe(`unix://${server.socketPath}`);
    expect(server.pid).toBeGreaterThan(0);
    const store = await open({ redisUrl: server.url, dataDir: tempDir() });
    expect(await store.client.config('GET', 'dir')).toEqual(['dir', dir]);
  });

  it('refuses to start a second server on a data dir that is in use', async () => {
    const dir = tempDir();
    const server = await startLocalRedis({ dir, logger });
    servers.push(server);

    await expect(startLocalRedis({ dir, logger })).rejects.toThrow(/already listens/);
    expect(server.pid).toBeGreaterThan(0);
  });

  it('replaces a server left running by a dead owner when the caller holds the data dir, keeping its data', async () => {
    // A bare redis-server with Pylee's socket and AOF, and no supervisor: what a SIGKILLed Pylee leaves.
    const dir = tempDir();
    const socketPath = socketPathFor(dir);
    const orphan = spawn(
      'redis-server',
      ['--port', '0', '--unixsocket', socketPath, '--dir', dir, '--appendonly', 'yes', '--save', ''],
      {
        stdio: 'ignore',
      },
    );
    const before = await open({ redisUrl: `unix://${socketPath}`, dataDir: dir });
    for (
      let i = 0;
      i < 100 &&
      !(await before.ping().then(
        () => true,
        () => false,
      ));
      i++
    )
      await sleep(50);
    await before.client.set('queued', 'job-1');
    await before.close();
    const orphanPid = orphan.pid as number;

    const replacement = await startLocalRedis({ dir, logger, replaceOrphan: true });
    servers.push(replacement);

    expect(replacement.pid).not.toBe(orphanPid);
    await new Promise((resolve) => (orphan.exitCode === null ? orphan.once('exit', resolve) : resolve(null)));
    expect(orphan.exitCode ?? orphan.signalCode).not.toBeNull();
    const after = await open({ redisUrl: `unix://${replacement.socketPath}`, dataDir: dir });
    expect(await after.client.get('queued')).toBe('job-1');
    await after.close();
  });

  it('stops the server for good, without a restart, and can be stopped twice', async () => {
    const server = await startLocalRedis({ dir: tempDir(), logger });
    servers.push(server);
    const pid = server.pid as number;

    await Promise.all([server.stop(), server.stop()]);

    expect(server.pid).toBeUndefined();
    expect(() => process.kill(pid, 0)).toThrow();
    await sleep(500);
    expect(fs.existsSync(server.socketPath)).toBe(false);
  });
});

describe('external Redis', () => {
  it('connects to an external Redis by URL', async () => {
    const external = await startExternalRedis();
    const store = await open({ redisUrl: external.url, dataDir: tempDir() });

    expect(store.driver).toBe('redis-server');
    await store.client.set('external', 'yes');
    expect(await store.client.get('external')).toBe('yes');
    const queueConnection = store.connection();
    expect(await queueConnection.get('external')).toBe('yes');
    expect(queueConnection.options.maxRetriesPerRequest).toBeNull();
  });

  it('ping rejects when the server is stopped', async () => {
    const external = await startExternalRedis();
    const store = await open({ redisUrl: external.url, dataDir: tempDir() });
    await store.ping();

    external.child.kill('SIGKILL');
    await exited(external.child);

    await expect(store.ping()).rejects.toThrow();
  });

  it('ping rejects when Redis is unreachable from the start', async () => {
    const store = await open({ redisUrl: 'redis://127.0.0.1:1', dataDir: tempDir() });

    await expect(store.ping()).rejects.toThrow();
  });

  it('closes connections that BullMQ already closed without throwing', async () => {
    const external = await startExternalRedis();
    const store = await open({ redisUrl: external.url, dataDir: tempDir() });
    const connection = store.connection();
    await connection.ping();
    await connection.quit();

    await expect(store.close()).resolves.toBeUndefined();
    expect(store.client.status).toBe('end');
  });
});
