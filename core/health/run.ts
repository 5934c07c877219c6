import semver from 'semver';
import type { Queryable } from '../db/client.ts';
import { newId } from '../ids.ts';
import type { Warehouse } from '../warehouse/client.ts';
import type { HealthCheck } from './model.ts';
import { runProbe, type ProbeResult } from './probe.ts';
import { writeResults, type HealthResult } from './results.ts';
import { saveToolSnapshot } from './tools.ts';

export interface RunContext {
  /** A startup run knows its deployment's environment and version; periodic runs may not. */
  environment?: string | undefined;
  version?: string | undefined;
  deploymentId?: string | undefined;
  /** The version believed to run (the environment's stable one) when the target does not say. */
  fallbackVersion?: string | undefined;
}

export interface CheckRun {
  result: HealthResult;
  probe: ProbeResult;
}

/**
 * Probes a check once, stores the result in ClickHouse and, for an MCP check that listed its tools,
 * the tool list in Postgres. The version recorded is, in order: the one the caller knows (a
 * deployment's), the one an MCP server reports in `initialize` when it is semver, the
 * environment's stable version when the caller looked it up, the check's selector when that names
 * one exact version, else ''.
 */
export async function runCheck(
  deps: { db: Queryable; warehouse: Warehouse },
  check: HealthCheck,
  context: RunContext = {},
): Promise<CheckRun> {
  const time = new Date();
  const probe = await runProbe({ kind: check.kind, target: check.target, timeoutMs: check.timeoutMs });
  const reported = probe.serverInfo?.version;
  const version =
    context.version ??
    (reported && semver.valid(reported) ? reported : undefined) ??
    context.fallbackVersion ??
    (check.versionSelector && semver.valid(check.versionSelector) ? check.versionSelector : '');
  const environment = context.environment ?? check.environment ?? '';
  const result: HealthResult = {
    orgId: check.orgId,
    server: check.server,
    environment,
    version,
    checkId: check.id,
    checkName: check.name,
    kind: check.kind,
    phase: check.phase,
    time: time.toISOString(),
    ok: probe.ok,
    latencyMs: probe.latencyMs,
    statusCode: probe.statusCode,
    error: probe.error,
    protocolVersion: probe.protocolVersion ?? '',
    toolCount: probe.toolCount ?? 0,
    toolsHash: probe.toolsHash ?? '',
    deploymentId: context.deploymentId ?? '',
    runId: newId(),
  };
  await writeResults(deps.warehouse, [result]);
  if (probe.ok && probe.tools && probe.toolsHash) {
    await saveToolSnapshot(deps.db, check.orgId, {
      server: check.server,
      environment,
      version,
      checkId: check.id,
      protocolVersion: probe.protocolVersion ?? '',
      serverInfo: probe.serverInfo ?? null,
      tools: probe.tools,
      toolsHash: probe.toolsHash,
      observedAt: result.time,
    });
  }
  return { result, probe };
}
