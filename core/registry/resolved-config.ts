import { appendAudit } from '../audit/log.ts';
import type { Context } from '../auth/principal.ts';
import type { SecretBox } from '../crypto/secret-box.ts';
import type { Db } from '../db/client.ts';
import { applyValues, declaredInputs, type DeclaredInput, type VersionConfig } from './server-json.ts';
import { ENVIRONMENT_PATTERN, resolveVariables, type ResolvedVariable } from './variables.ts';
import { versionIds } from './versions.ts';
import { BadRequestError } from '../errors.ts';

export interface ResolvedConfig {
  server: string;
  version: string;
  environment: string | null;
  /** The version's configuration with `{placeholders}`, headers and env values filled in. */
  config: VersionConfig;
  /** Every variable and secret that applies, with the scope it came from (most specific wins). */
  variables: Record<string, ResolvedVariable>;
  /** Required inputs that no variable, secret or default provides: the deployment would fail. */
  missing: DeclaredInput[];
}

/**
 * The configuration a deployment of this version to `environment` would run with, secret values
 * included. Callers must hold deploy permission; every call is audited (names, never values).
 */
export async function resolveConfig(
  db: Db,
  box: SecretBox,
  ctx: Context,
  serverSlug: string,
  version: string,
  environment?: string,
): Promise<ResolvedConfig> {
  if (environment !== undefined && !new RegExp(ENVIRONMENT_PATTERN).test(environment)) {
    throw new BadRequestError(
      `environment ${JSON.stringify(environment)} is not an environment name (e.g. production)`,
      'invalid-environment',
    );
  }
  const { serverId, versionId, row } = await versionIds(db, ctx.principal, serverSlug, version);
  const variables = await resolveVariables(db, box, ctx.principal.orgId, {
    serverId,
    versionId,
    environment,
  });
  const values = Object.fromEntries(Object.entries(variables).map(([name, v]) => [name, v.value]));
  const missing = declaredInputs(row.config).filter(
    (input) => input.isRequired && !(input.name in values) && input.default === undefined,
  );
  await db.transaction((tx) =>
    appendAudit(tx, ctx, {
      action: 'version.config.resolve',
      target: { type: 'version', id: versionId, name: `${serverSlug}@${version}` },
      after: {
        environment: environment ?? null,
        names: Object.keys(variables).sort(),
        sealed: Object.keys(variables)
          .filter((n) => variables[n]?.secret)
          .sort(),
        missing: missing.map((m) => m.name),
      },
    }),
  );
  return {
    server: serverSlug,
    version,
    environment: environment ?? null,
    config: applyValues(row.config, values),
    variables,
    missing,
  };
}
