import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { listen } from '#core/http/listen.ts';

describe('listen', () => {
  it('lets close() finish while a client keeps alive the connection of a request answered during it', async () => {
    const app = Fastify();
    let arrived!: () => void;
    const requestArrived = new Promise<void>((resolve) => (arrived = resolve));
    app.get('/slow', async () => {
      arrived();
      await sleep(200);
      return { ok: true };
    });
    const url = await listen(app, '127.0.0.1', 0, 'test');
    const agent = new http.Agent({ keepAlive: true });
    try {
      const answered = new Promise<{ status: number | undefined; connection: string | undefined }>(
        (resolve, reject) => {
          http
            .get(`${url}/slow`, { agent }, (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection }));
            })
            .on('error', reject);
        },
      );
      await requestArrived;

      const closed = app.close().then(() => 'closed' as const);
      const response = await answered;
      // Fastify's keep-alive timeout is 72 s: without closing the connection, close() waits for it.
      const outcome = await Promise.race([closed, sleep(5_000, 'still open' as const)]);

      expect(response).toEqual({ status: 200, connection: 'keep-alive' });
      expect(outcome).toBe('closed');
    } finally {
      agent.destroy();
    }
  });
});
