import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';

/** Where `vite build` (run by `npm start` / `npm test` setup) puts the web UI. */
export const WEB_BUILD_DIR = path.resolve(import.meta.dirname, '..', 'web', 'build');

/** Headers every UI response carries: no framing, no sniffing, no referrer leaking paths to other sites. */
function securityHeaders(reply: FastifyReply): void {
  reply.header('x-content-type-options', 'nosniff');
  reply.header('x-frame-options', 'DENY');
  reply.header('referrer-policy', 'no-referrer');
}

/**
 * Serves the web UI at `/`: files of the build as they are (hashed assets under `_app/immutable/`
 * cached for a year, everything else revalidated) and `index.html` for every other path, so the
 * single-page app routes it. `/api/…` paths never fall back. Without a build, `/` says how to make one.
 */
export async function installStatic(app: FastifyInstance, root = WEB_BUILD_DIR): Promise<void> {
  const index = path.join(root, 'index.html');
  if (!fs.existsSync(index)) {
    app.get('/', { schema: { hide: true } }, async (_req, reply) =>
      reply
        .type('text/plain; charset=utf-8')
        .send('The Pylee web UI is not built; run `npm start` (it builds web/) or `npm run build:web`.\n'),
    );
    return;
  }
  await app.register(fastifyStatic, { root, serve: false });
  app.get('/*', { schema: { hide: true } }, async (req, reply) => {
    const urlPath = req.url.split('?')[0] ?? '/';
    if (urlPath === '/api' || urlPath.startsWith('/api/')) return reply.callNotFound();
    securityHeaders(reply);
    let relative: string;
    try {
      relative = path.normalize(decodeURIComponent(urlPath)).replace(/^[/\\]+/, '');
    } catch {
      relative = '';
    }
    const file = path.join(root, relative);
    const isFile =
      relative !== '' &&
      file.startsWith(root + path.sep) &&
      fs.statSync(file, { throwIfNoEntry: false })?.isFile();
    if (isFile) {
      const immutable = relative.startsWith(`_app${path.sep}immutable${path.sep}`);
      reply.header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
      return reply.sendFile(relative, { cacheControl: false });
    }
    reply.header('cache-control', 'no-cache');
    return reply.sendFile('index.html', { cacheControl: false });
  });
}
