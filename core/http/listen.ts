import type { FastifyInstance } from 'fastify';

/** Listens and returns the base URL actually bound (port 0 picks a free one). */
export async function listen(app: FastifyInstance, host: string, port: number, what: string) {
  await app.listen({ host, port, listenTextResolver: (address) => `${what} listening on ${address}` });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  return url;
}
