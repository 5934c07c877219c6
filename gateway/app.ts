import { createHash } from 'node:crypto';
import path from 'node:path';
import rateLimit from '@fastify/rate-limit';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { assertConnect, type Principal } from '#core/auth/principal.ts';
import { authenticate } from '#core/auth/tokens.ts';
import type { Config } from '#core/config.ts';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import { NotFoundError } from '#core/errors.ts';
import { clientKeyOf } from '#core/gateway/routing.ts';
import { subscribeRoutingChanges } from '#core/gateway/routing-signal.ts';
import { fastifyOptions } from '#core/http/fastify-options.ts';
import { installOpsRoutes } from '#core/http/ops-routes.ts';
import type { Logger } from '#core/logger.ts';
import type { Stores } from '#core/stores.ts';
import { GatewayFronting } from '#core/telemetry/fronted.ts';
import { TelemetryWriter, type TelemetryWriterOptions } from '#core/warehouse/telemetry-writer.ts';
import { DirectoryCache } from './directory-cache.ts';
import { GATEWAY_ERROR, GatewayError, installRpcErrors } from './errors.ts';
import { forward, type Caller, type Target } from './mcp.ts';
import { Recorder } from './recorder.ts';
import { Sessions, header } from './sessions.ts';
import { SseTransport } from './sse-transport.ts';
import { UpstreamClient, type UpstreamTimeouts } from './upstream-client.ts';

export interface GatewayDeps {
  stores: Pick<Stores, 'db' | 'warehouse' | 'redis'>;
  logger: Logger;
  secretBox: SecretBox;
  config: Pick<
    Config,
    'dataDir' | 'gatewayBodyLimit' | 'gatewayAllowedOrigins' | 'gatewayRateLimitMax' | 'rateLimit'
  >;
  timeouts?: UpstreamTimeouts | undefined;
  /** How long routing is cached without a change signal. @defaultValue 10000 */
  refreshMs?: number | undefined;
  /** @defaultValue 15000 */
  keepAliveMs?: number | undefined;
  writer?: Omit<TelemetryWriterOptions, 'dataDir' | 'logger'> | undefined;
}

/** The header a client without a Pylee token may send to be routed as one client. */
export const CLIENT_KEY_HEADER = 'x-pylee-client-key';
const PRINCIPAL_CACHE_MS = 10_000;
const PRINCIPAL_CACHE_MAX = 10_000;

/**
 * The MCP gateway: the endpoint MCP clients connect to. Routes each session to a version by the
 * rollout's live weights, keeps it there, moves it on a rollback, and records every exchange.
 * Stateless apart from the stores: any number of gateway processes serve the same clients.
 */
export async function buildGateway(deps: GatewayDeps): Promise<FastifyInstance> {
  const { stores, config } = deps;
  // No log line per request: the gateway serves every MCP call, and each is a telemetry row already;
  // failures are logged where they happen.
  const app = Fastify({
    ...fastifyOptions(deps.logger, config.gatewayBodyLimit),
    disableRequestLogging: true,
  });
  installRpcErrors(app);
  installOpsRoutes(app, 'gateway', stores);
  app.removeAllContentTypeParsers();
  // The body is forwarded byte for byte and read by exchange.ts, which answers what JSON-RPC asks.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  // The gateway's own log and spool: in one process with the collector, each writer has its own.
  const writer = new TelemetryWriter(stores.warehouse, {
    ...deps.writer,
    dataDir: path.join(config.dataDir, 'gateway'),
    logger: deps.logger,
  });
  const client = new UpstreamClient(deps.timeouts);
  const directory = new DirectoryCache(stores.db, deps.secretBox, { ttlMs: deps.refreshMs });
  const recorder = new Recorder(
    writer,
    deps.secretBox,
    new GatewayFronting(stores.redis.client),
    deps.logger,
  );
  const sessions = new Sessions({
    box: deps.secretBox,
    redis: stores.redis.client,
    directory,
    client,
    recorder,
  });
  const forwardDeps = { directory, sessions, client, recorder, keepAliveMs: deps.keepAliveMs ?? 15_000 };

  const subscriber = stores.redis.connection();
  await subscribeRoutingChanges(subscriber, (change) => directory.invalidate(change.orgId, change.server));
  app.addHook('onClose', async () => {
    await subscriber.quit().catch(() => subscriber.disconnect());
    await client.close();
    await recorder.flush();
    await writer.close();
  });

  const allowed = new Set(config.gatewayAllowedOrigins);
  app.addHook('onRequest', async (req) => {
    const origin = header(req.headers.origin);
    // The MCP spec's DNS-rebinding guard: a browser page may call only from an allowed origin.
    if (origin !== undefined && !allowed.has(origin)) {
      throw new GatewayError(
        403,
        GATEWAY_ERROR,
        `origin ${origin} may not call this gateway; an operator can allow it with PYLEE_GATEWAY_ALLOWED_ORIGINS`,
        null,
        'origin-not-allowed',
      );
    }
  });

  await app.register(rateLimit, {
    redis: stores.redis.client,
    nameSpace: 'pylee:gateway:ratelimit:',
    max: config.gatewayRateLimitMax,
    timeWindow: config.rateLimit.windowMs,
    skipOnError: true,
    keyGenerator: (req) => {
      const auth = header(req.headers.authorization);
      return auth ? `auth:${createHash('sha256').update(auth).digest('hex').slice(0, 32)}` : `ip:${req.ip}`;
    },
    errorResponseBuilder: (_req, context) =>
      new GatewayError(
        429,
        GATEWAY_ERROR,
        `more than ${context.max} requests in this rate-limit window from this client; retry in ${context.after}`,
        null,
        'rate-limited',
      ),
  });

  const principals = new Map<string, { at: number; value: Promise<Principal> }>();
  const principalOf = (token: string): Promise<Principal> => {
    const key = createHash('sha256').update(token).digest('hex');
    const hit = principals.get(key);
    if (hit && Date.now() - hit.at < PRINCIPAL_CACHE_MS) return hit.value;
    if (principals.size >= PRINCIPAL_CACHE_MAX) principals.clear();
    const value = authenticate(stores.db, token);
    principals.set(key, { at: Date.now(), value });
    value.catch(() => undefined);
    return value;
  };

  /** Who may call `target`, by its environment's access mode. */
  const admit = async (req: FastifyRequest, target: Target): Promise<Caller> => {
    const address = req.ip;
    const keyHeader = header(req.headers[CLIENT_KEY_HEADER]);
    if (target.access === 'public')
      return { clientKey: clientKeyOf({ clientKeyHeader: keyHeader, address }) };
    if (target.access === 'passthrough') {
      return {
        clientKey: clientKeyOf({ clientKeyHeader: keyHeader, address }),
        authorization: header(req.headers.authorization),
      };
    }
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header(req.headers.authorization) ?? '')?.[1];
    const principal = await principalOf(token ?? '');
    // Another org's server is as unknown as a server that does not exist.
    if (principal.orgId !== target.routing.orgId) throw unknownServer();
    try {
      assertConnect(
        principal,
        target.routing.server,
        target.env?.name ?? `${target.routing.server}@${target.pinned}`,
      );
    } catch (error) {
      // A token limited to other servers does not learn that this one exists.
      if (error instanceof NotFoundError) throw unknownServer();
      throw error;
    }
    return {
      clientKey: clientKeyOf({
        tokenId: principal.tokenId ?? undefined,
        clientKeyHeader: keyHeader,
        address,
      }),
    };
  };

  const environmentTarget = async (params: {
    org: string;
    server: string;
    environment: string;
  }): Promise<Target> => {
    const routing = await directory.server(params.org, params.server);
    if (!routing || routing.archived) throw unknownServer();
    const env = routing.environments.get(params.environment);
    if (!env) throw unknownServer();
    return { routing, env, access: env.access };
  };

  const pinnedTarget = async (params: { org: string; target: string }): Promise<Target> => {
    const at = params.target.lastIndexOf('@');
    if (at <= 0) throw unknownServer();
    const server = params.target.slice(0, at);
    const version = decodeURIComponent(params.target.slice(at + 1));
    const routing = await directory.server(params.org, server);
    if (!routing || routing.archived) throw unknownServer();
    const known = routing.versions.get(version);
    if (!known)
      throw new GatewayError(
        404,
        GATEWAY_ERROR,
        `version ${version} of ${server} was not found`,
        null,
        'version-not-found',
      );
    if (known.status === 'retired')
      throw new GatewayError(
        404,
        GATEWAY_ERROR,
        `version ${version} of ${server} is retired and takes no traffic`,
        null,
        'version-retired',
      );
    // A pinned version is shared by link: only tokens may use it, whatever the environments allow.
    return { routing, env: null, pinned: version, access: 'pylee' };
  };

  type EnvParams = { Params: { org: string; server: string; environment: string } };
  type PinnedParams = { Params: { org: string; target: string } };
  for (const method of ['POST', 'GET', 'DELETE'] as const) {
    app.route<EnvParams>({
      method,
      url: '/:org/:server/:environment/mcp',
      handler: async (req, reply) => {
        const target = await environmentTarget(req.params);
        return forward(forwardDeps, req, reply, target, await admit(req, target));
      },
    });
    app.route<PinnedParams>({
      method,
      url: '/:org/:target/mcp',
      handler: async (req, reply) => {
        const target = await pinnedTarget(req.params);
        return forward(forwardDeps, req, reply, target, await admit(req, target));
      },
    });
  }
  const sse = new SseTransport(forwardDeps);
  app.get<EnvParams>('/:org/:server/:environment/sse', async (req, reply) => {
    const target = await environmentTarget(req.params);
    const { org, server, environment } = req.params;
    const messages = `/${org}/${server}/${environment}/messages`;
    return sse.stream(req, reply, target, await admit(req, target), messages);
  });
  app.post<EnvParams & { Querystring: { session?: string } }>(
    '/:org/:server/:environment/messages',
    async (req, reply) => {
      const target = await environmentTarget(req.params);
      const caller = await admit(req, target);
      return sse.message(req, reply, target, caller, req.query.session ?? '');
    },
  );
  return app;
}

/** The one answer for an unknown org, server or environment, an archived server and another org's server. */
function unknownServer(): GatewayError {
  return new GatewayError(404, GATEWAY_ERROR, 'no such MCP server here', null, 'server-not-found');
}
