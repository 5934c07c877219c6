import type { FastifyInstance } from 'fastify';
import { buildApi } from '#api/app.ts';
import type { Permission } from '#core/auth/principal.ts';
import { createToken } from '#core/auth/tokens.ts';
import { bootstrap, systemPrincipal, type Org } from '#core/orgs.ts';
import type { Stores } from '#core/stores.ts';
import { randomBytes } from 'node:crypto';
import { createSecretBox } from '#core/crypto/secret-box.ts';
import { silentLogger } from './stores.ts';

/** One random key per test process. */
export const testSecretBox = createSecretBox(randomBytes(32));

export const BOOTSTRAP_TOKEN = 'pyl_test-bootstrap-token-0123456789';

export interface TestApi {
  app: FastifyInstance;
  org: Org;
  /** Creates a token in org `default` and returns its plain value. */
  token(permissions: Permission[], extra?: { servers?: string[]; name?: string }): Promise<string>;
}

/** The real API over real stores, driven with `app.inject`. */
export async function buildTestApi(
  stores: Stores,
  options: { rateLimit?: { max: number; windowMs: number }; bodyLimit?: number } = {},
): Promise<TestApi> {
  const { org } = await bootstrap(stores.db, BOOTSTRAP_TOKEN);
  const app = await buildApi({
    config: {
      apiBodyLimit: options.bodyLimit ?? 1024 * 1024,
      rateLimit: options.rateLimit ?? { max: 100_000, windowMs: 60_000 },
      // Tests' webhook receivers (test/helpers/sink.ts) listen on 127.0.0.1.
      allowPrivateWebhooks: true,
    },
    stores,
    logger: silentLogger,
    version: '0.0.0-test',
    secretBox: testSecretBox,
  });
  await app.ready();
  return {
    app,
    org,
    async token(permissions, extra = {}) {
      const ctx = { principal: systemPrincipal(org) };
      const { token } = await createToken(stores.db, ctx, {
        name: extra.name ?? permissions.join('+'),
        permissions,
        servers: extra.servers,
      });
      return token;
    },
  };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
