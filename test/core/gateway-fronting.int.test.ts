import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openRedis, type RedisStore } from '#core/queue/redis.ts';
import { frontedKey, GatewayFronting } from '#core/telemetry/fronted.ts';
import { silentLogger } from '#test/helpers/stores.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';
import { until } from '#test/helpers/until.ts';

// GatewayFronting against a real redis-server: what it sends (counted with INFO commandstats, reset
// per test) and what it answers when Redis fails or does not answer.

let dir: string;
let store: RedisStore;
let redis: Redis;

beforeAll(async () => {
  dir = tempDir('pylee-fronting');
  store = await openRedis({ dataDir: dir, redisUrl: undefined }, silentLogger);
  redis = store.client;
});

afterAll(async () => {
  await store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Calls of one Redis command since the last CONFIG RESETSTAT. */
async function calls(command: string): Promise<number> {
  const info = await redis.info('commandstats');
  return Number(new RegExp(`^cmdstat_${command}:calls=(\\d+)`, 'm').exec(info)?.[1] ?? 0);
}

/** A server that accepts connections and never answers: a Redis that hangs. */
async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

describe('GatewayFronting.mark', () => {
  it('sets the pair key with its TTL, once per 30 s however many exchanges there are', async () => {
    const org = randomUUID();
    const fronting = new GatewayFronting(redis, { ttlSeconds: 60 });
    await redis.config('RESETSTAT');

    for (let i = 0; i < 100; i++) fronting.mark(org, 'weather', 'production');
    fronting.mark(org, 'weather', 'staging');

    const key = frontedKey(org, 'weather', 'production');
    expect(key).toBe(`pylee:gateway:fronted:${org}:weather:production`);
    await until(async () => (await redis.exists(key, frontedKey(org, 'weather', 'staging'))) === 2, {
      what: 'both marks in Redis',
    });
    expect(await calls('set')).toBe(2);
    const ttl = await redis.ttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60);
  });

  it('never throws, and leaves no rejection behind, when Redis refuses the command', async () => {
    const broken = new Redis({
      path: path.join(dir, 'no-such.sock'),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    broken.on('error', () => {});
    const fronting = new GatewayFronting(broken);
    for (let i = 0; i < 3; i++) expect(() => fronting.mark('org', 'weather', 'production')).not.toThrow();
    // A failed SET is forgotten, so the next exchange tries again; vitest fails on unhandled rejections.
    expect(await fronting.isFronted('org', 'weather', 'production')).toBe(false);
    broken.disconnect();
  });
});

describe('GatewayFronting.isFronted', () => {
  it('answers from Redis, one lookup per pair shared by concurrent callers and cached for cacheMs', async () => {
    const org = randomUUID();
    await redis.set(frontedKey(org, 'weather', 'production'), '1', 'EX', 600);
    const fronting = new GatewayFronting(redis, { cacheMs: 60_000 });
    await redis.config('RESETSTAT');

    const first = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        fronting.isFronted(org, 'weather', i % 2 === 0 ? 'production' : 'staging'),
      ),
    );
    expect(first).toEqual(Array.from({ length: 50 }, (_, i) => i % 2 === 0));
    expect(await calls('exists')).toBe(2);

    // Cached: a mark landing now is seen only after cacheMs; a fresh instance sees it at once.
    await redis.set(frontedKey(org, 'weather', 'staging'), '1', 'EX', 600);
    expect(await fronting.isFronted(org, 'weather', 'staging')).toBe(false);
    expect(await fronting.isFronted(org, 'weather', 'production')).toBe(true);
    expect(await calls('exists')).toBe(2);
    expect(await new GatewayFronting(redis, { cacheMs: 0 }).isFronted(org, 'weather', 'staging')).toBe(true);
  });

  it('looks again once cacheMs has passed', async () => {
    const org = randomUUID();
    const fronting = new GatewayFronting(redis, { cacheMs: 0 });
    expect(await fronting.isFronted(org, 'weather', 'production')).toBe(false);
    await redis.set(frontedKey(org, 'weather', 'production'), '1', 'EX', 600);
    expect(await fronting.isFronted(org, 'weather', 'production')).toBe(true);
  });

  it('answers false (counted) when Redis fails, and never rejects', async () => {
    const broken = new Redis({
      path: path.join(dir, 'no-such.sock'),
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    broken.on('error', () => {});
    const fronting = new GatewayFronting(broken);
    await expect(fronting.isFronted('org', 'weather', 'production')).resolves.toBe(false);
    broken.disconnect();
  });

  it('answers false after lookupTimeoutMs when Redis does not answer, and again from the cache', async () => {
    const server = await silentServer();
    const hung = new Redis({ port: server.port, host: '127.0.0.1', maxRetriesPerRequest: 1 });
    hung.on('error', () => {});
    const fronting = new GatewayFronting(hung, { lookupTimeoutMs: 50 });
    try {
      await expect(fronting.isFronted('org', 'weather', 'production')).resolves.toBe(false);
      // Within cacheMs nothing waits on the hung server any more.
      await expect(fronting.isFronted('org', 'weather', 'production')).resolves.toBe(false);
    } finally {
      hung.disconnect();
      await server.close();
    }
  });

  it('refuses options that make no sense', () => {
    expect(() => new GatewayFronting(redis, { ttlSeconds: 0 })).toThrow(/ttlSeconds/);
    expect(() => new GatewayFronting(redis, { cacheMs: -1 })).toThrow(/cacheMs/);
  });
});
