import { alertsRole } from '#alerts/role.ts';
import { apiRole } from '#api/role.ts';
import { collectorRole } from '#collector/role.ts';
import { gatewayRole } from '#gateway/role.ts';
import { loadConfig, type Role as RoleName } from '#core/config.ts';
import { createSecretBox } from '#core/crypto/secret-box.ts';
import { loadSecretKey } from '#core/crypto/secret-key.ts';
import { createLogger, routeConsoleTo } from '#core/logger.ts';
import { bootstrap } from '#core/orgs.ts';
import type { Role, RoleDeps } from '#core/role.ts';
import { openStores, type Stores } from '#core/stores.ts';
import { startSelfTelemetry } from '#core/telemetry/self-telemetry.ts';
import { PYLEE_VERSION } from '#core/version.ts';
import { startupSummary, type TokenWhere } from '#cli/startup-summary.ts';

const ROLES: Record<Exclude<RoleName, 'all'>, (deps: RoleDeps) => Role> = {
  api: apiRole,
  collector: collectorRole,
  gateway: gatewayRole,
  alerts: alertsRole,
};

/**
 * `pylee start`: the composition root. Opens and migrates the stores, bootstraps org `default`,
 * starts the roles, and on SIGTERM/SIGINT stops them in reverse order before closing the stores.
 */
export async function start(options: { role?: string | undefined }): Promise<void> {
  const began = performance.now();
  const config = loadConfig(process.env, { role: options.role, stdoutIsTty: process.stdout.isTTY });
  const logger = createLogger(config.logLevel, undefined, config.logFormat);
  routeConsoleTo(logger);
  const telemetry = startSelfTelemetry(PYLEE_VERSION);
  const roles: Role[] = [];
  let opening: Promise<Stores> | undefined;

  // Handlers go in before any store opens: a supervisor may stop Pylee while it is still starting,
  // and the default action would orphan redis-server and leave the data dir locked.
  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    stopping ??= (async () => {
      logger.info({ signal }, 'shutting down');
      // First: a signal to the whole process group has reached the embedded redis-server too, and it
      // may be gone already. Its clients then stop reconnecting, so the roles stop without it.
      void opening?.then(
        (s) => s.redis.prepareToStop(),
        () => {},
      );
      const timer = setTimeout(() => {
        logger.error(`shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting`);
        process.exit(1);
      }, config.shutdownTimeoutMs);
      timer.unref();
      for (const role of [...roles].reverse()) {
        await role
          .stop()
          .catch((err: unknown) => logger.error({ err, role: role.name }, 'role failed to stop'));
      }
      // Waits for stores still opening, so a signal during start-up closes them too.
      await opening?.then(
        (s) => s.close(),
        () => {},
      );
      await telemetry.shutdown();
      logger.info('stopped');
      clearTimeout(timer);
    })();
    return stopping;
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  // A stray rejection or exception is logged as JSON, never printed as a raw stack trace. While
  // running it still ends the process with exit code 1 (Node's default), after a clean stop; while
  // stopping (connections closing under in-flight work) it is only logged.
  const onFatal = (err: unknown, what: string) => {
    if (stopping) {
      logger.warn({ err }, `${what} while shutting down`);
      return;
    }
    logger.fatal({ err }, `${what}; shutting down`);
    void stop(what).finally(() => process.exit(1));
  };
  process.on('unhandledRejection', (reason) => onFatal(reason, 'unhandled promise rejection'));
  process.on('uncaughtException', (error) => onFatal(error, 'uncaught exception'));

  let token: TokenWhere = config.bootstrapToken ? 'bootstrap' : 'earlier';
  try {
    opening = openStores(config, logger);
    const stores = await opening;
    if (stopping) return await stopping;
    const { org, generatedToken } = await bootstrap(stores.db, config.bootstrapToken);
    if (generatedToken) token = 'printed';
    if (generatedToken) {
      process.stdout.write(
        `\nCreated org @${org.slug} with an admin token. It is shown only this once; keep it safe:\n\n    ${generatedToken}\n\n`,
      );
    }
    const secretBox = createSecretBox(loadSecretKey(config, logger));
    const names =
      config.role === 'all' ? (['collector', 'gateway', 'api', 'alerts'] as const) : [config.role];
    for (const name of names) {
      if (stopping) return await stopping;
      const role = ROLES[name]({ config, stores, logger, version: PYLEE_VERSION, secretBox });
      await role.start();
      roles.push(role);
      // With a port picked at start (0), the URLs the API shows for the gateway need the real one.
      if (name === 'gateway' && config.gatewayPort === 0 && !config.gatewayUrl) config.gatewayUrl = role.url;
    }
  } catch (error) {
    await stop('startup failure');
    throw error;
  }
  logger.info(
    {
      roles: roles.map((r) => r.name),
      urls: Object.fromEntries(roles.filter((r) => r.url).map((r) => [r.name, r.url])),
      startupMs: Math.round(performance.now() - began),
      version: PYLEE_VERSION,
    },
    'pylee started',
  );
  // A person at a terminal gets the addresses in one place; JSON logs keep stdout machine-readable.
  if (config.logFormat === 'pretty') {
    process.stdout.write(startupSummary({ config, version: PYLEE_VERSION, roles, token }));
  }
}
