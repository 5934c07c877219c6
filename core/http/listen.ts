import type { FastifyInstance } from 'fastify';

/** Listens and returns the base URL actually bound (port 0 picks a free one). */
export async function listen(app: FastifyInstance, host: string, port: number, what: string) {
  await app.listen({ host, port, listenTextResolver: (address) => `${what} listening on ${address}` });
  // A request in flight when the server starts closing is still answered keep-alive, and its idle
  // connection would then hold close() (and the shutdown) until the client lets go of it, up to
  // fastify's 72 s keep-alive timeout. Once closing, connections close as their responses go out.
  app.server.on('request', (_req, res) => {
    res.once('finish', () => {
      if (!app.server.listening) setImmediate(() => app.server.closeIdleConnections());
    });
  });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  return url;
}
