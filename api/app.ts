import Fastify, { type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import cookie from '@fastify/cookie';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from '#core/config.ts';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import { fastifyOptions } from '#core/http/fastify-options.ts';
import { installOpsRoutes } from '#core/http/ops-routes.ts';
import { installProblemHandlers } from '#core/http/problem.ts';
import type { Logger } from '#core/logger.ts';
import type { Stores } from '#core/stores.ts';
import { openDeployDeps } from '#core/deploy/wiring.ts';
import { announceRoutingChange } from '#core/gateway/routing-signal.ts';
import { openCanaryQueue } from '#core/canary/queue.ts';
import { gatewayBaseUrl } from '#core/gateway/access.ts';
import { AccessLogWriter } from '#core/warehouse/access-log.ts';
import { installAuth } from './plugins/auth.ts';
import { installRateLimit } from './plugins/rate-limit.ts';
import { installStrictBodies } from './plugins/strict-body.ts';
import { accessLogRoutes } from './routes/access-log.ts';
import { alertRoutes } from './routes/alerts.ts';
import { analysisRoutes } from './routes/analyses.ts';
import { auditRoutes } from './routes/audit.ts';
import { changeRoutes } from './routes/changes.ts';
import { channelRoutes } from './routes/channels.ts';
import { deploymentRoutes } from './routes/deployments.ts';
import { environmentRoutes } from './routes/environments.ts';
import { gatewayRoutes } from './routes/gateway.ts';
import { healthCheckRoutes } from './routes/health-checks.ts';
import { inhibitionRoutes } from './routes/inhibitions.ts';
import { ingestKeyRoutes } from './routes/ingest-keys.ts';
import {
  MCP_REGISTRY_PREFIXES,
  mcpRegistryRoutes,
  mcpRegistrySettingsRoutes,
} from './routes/mcp-registry.ts';
import { meRoutes } from './routes/me.ts';
import { orgRoutes } from './routes/orgs.ts';
import { overviewRoutes } from './routes/overview.ts';
import { registryRoutes } from './routes/registry.ts';
import { packageRoutes } from './routes/packages.ts';
import { releaseHealthRoutes } from './routes/release-health.ts';
import { retentionRoutes } from './routes/retention.ts';
import { sessionRoutes } from './routes/session.ts';
import { serverRoutes } from './routes/servers.ts';
import { telemetryRoutes } from './routes/telemetry.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { variableRoutes } from './routes/variables.ts';
import { versionRoutes } from './routes/versions.ts';
import { lineRoutes } from './routes/lines.ts';
import { templateRoutes } from './routes/templates.ts';
import { vulnerabilityRoutes } from './routes/vulnerabilities.ts';
import { Problem } from './schemas.ts';
import { SessionStore } from './session-store.ts';
import { installStatic } from './static.ts';

export const API_PREFIX = '/api/v1';

export interface ApiDeps {
  config: Pick<Config, 'apiBodyLimit' | 'rateLimit'> &
    Partial<Pick<Config, 'allowPrivateWebhooks' | 'gatewayUrl' | 'gatewayPort' | 'host'>>;
  stores: Pick<Stores, 'db' | 'warehouse' | 'redis'>;
  logger: Logger;
  version: string;
  /** Seals and opens secrets; made from PYLEE_SECRET_KEY or the data dir's key file. */
  secretBox: SecretBox;
}

/** Builds the API (not listening), so tests drive it with `app.inject`. */
export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const { config, stores } = deps;
  const app = Fastify(
    fastifyOptions(deps.logger, config.apiBodyLimit),
  ).withTypeProvider<TypeBoxTypeProvider>();
  installProblemHandlers(app, config.apiBodyLimit);
  // Before any route: every route without a body schema gets the strict empty one.
  installStrictBodies(app);
  app.addSchema(Problem);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Pylee API',
        version: deps.version,
        description: 'Version registry and release health for MCP servers',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (json.$id as string | undefined) ?? `def-${i}`,
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/docs', uiConfig: { docExpansion: 'list' } });
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  installOpsRoutes(app, 'api', stores);
  await app.register(cookie);
  const sessions = new SessionStore(stores.redis.client, deps.secretBox);
  await installStatic(app);
  // The MCP Registry API lives outside /api/v1, at the paths MCP clients expect (/v0/servers).
  for (const prefix of MCP_REGISTRY_PREFIXES) {
    const deps = {
      db: stores.db,
      redis: stores.redis.client,
      rateLimit: config.rateLimit,
      sessions,
      gatewayBase: () => gatewayBaseUrl(config),
    };
    await app.register(mcpRegistryRoutes(deps), { prefix });
  }

  await app.register(
    async (v1) => {
      await installRateLimit(v1, stores.redis.client, config.rateLimit);
      installAuth(v1, stores.db, sessions);
      const accessLog = new AccessLogWriter(stores.warehouse, deps.logger);
      v1.addHook('onClose', () => accessLog.close());
      // Any change to a server (its versions, variables, secrets, access, archive) may change what the
      // gateway routes to: the gateway processes hear of it at once instead of at their next refresh.
      v1.addHook('onResponse', async (req, reply) => {
        const server = (req.params as { server?: unknown } | undefined)?.server;
        if (req.method === 'GET' || reply.statusCode >= 300 || typeof server !== 'string' || !req.principal)
          return;
        await announceRoutingChange(stores.redis.client, { orgId: req.principal.orgId, server });
      });
      v1.addHook('onResponse', async (req, reply) => {
        accessLog.write({
          org_id: req.principal?.orgId ?? '',
          time: new Date().toISOString(),
          request_id: req.id,
          role: 'api',
          method: req.method,
          route: req.routeOptions.url ?? '',
          path: req.url.split('?')[0] ?? '',
          status: reply.statusCode,
          duration_ms: reply.elapsedTime,
          token_id: req.principal?.tokenId ?? '',
          client_address: req.ip,
          user_agent: req.headers['user-agent'] ?? '',
        });
      });
      await v1.register(meRoutes);
      await v1.register(sessionRoutes(sessions));
      await v1.register(tokenRoutes(stores.db));
      await v1.register(orgRoutes(stores.db));
      await v1.register(auditRoutes(stores.db));
      await v1.register(accessLogRoutes(stores.warehouse));
      await v1.register(serverRoutes(stores.db));
      await v1.register(versionRoutes(stores.db, deps.secretBox));
      await v1.register(lineRoutes(stores.db));
      await v1.register(templateRoutes(stores.db));
      await v1.register(variableRoutes(stores.db, deps.secretBox));
      await v1.register(registryRoutes(stores.db));
      await v1.register(packageRoutes(stores.db));
      await v1.register(mcpRegistrySettingsRoutes(stores.db));
      await v1.register(retentionRoutes(stores.db));
      await v1.register(ingestKeyRoutes(stores.db));
      await v1.register(telemetryRoutes(stores.db, stores.warehouse));
      await v1.register(changeRoutes(stores.db, stores.warehouse));
      await v1.register(overviewRoutes(stores.db, stores.warehouse));
      await v1.register(releaseHealthRoutes(stores.db, stores.warehouse));
      await v1.register(
        channelRoutes({
          db: stores.db,
          redis: stores.redis,
          box: deps.secretBox,
          logger: deps.logger,
          policy: { allowPrivate: config.allowPrivateWebhooks ?? false },
        }),
      );
      const deploy = openDeployDeps({ db: stores.db, redis: stores.redis, logger: deps.logger });
      v1.addHook('onClose', () => deploy.close());
      await v1.register(environmentRoutes(stores.db));
      // Read per request: a gateway on an OS-picked port (PYLEE_GATEWAY_PORT=0) is known once it listens.
      await v1.register(gatewayRoutes(stores.db, () => gatewayBaseUrl(config), stores.warehouse));
      await v1.register(deploymentRoutes(deploy.deps));
      await v1.register(vulnerabilityRoutes(stores.db, deploy.deps.publisher));
      await v1.register(healthCheckRoutes(stores.db, stores.warehouse, stores.redis));
      await v1.register(alertRoutes({ ...stores, logger: deps.logger }));
      await v1.register(inhibitionRoutes(stores.db));
      const canary = openCanaryQueue(stores.redis, deps.logger);
      v1.addHook('onClose', () => canary.close());
      await v1.register(
        analysisRoutes({
          db: stores.db,
          warehouse: stores.warehouse,
          publisher: deploy.deps.publisher,
          scheduler: canary.scheduler,
          logger: deps.logger,
        }),
      );
    },
    { prefix: API_PREFIX },
  );
  return app;
}
