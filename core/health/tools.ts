import type { Queryable } from '../db/client.ts';
import type { ToolDescription } from './probe.ts';

/** The `tools/list` an MCP check last saw for one server, environment and version. */
export interface ToolSnapshot {
  server: string;
  /** '' when the check was not tied to one environment. */
  environment: string;
  /** '' when the version was not known. */
  version: string;
  checkId: string | null;
  protocolVersion: string;
  serverInfo: { name: string; version: string } | null;
  tools: ToolDescription[];
  toolsHash: string;
  toolCount: number;
  observedAt: string;
}

interface SnapshotRow {
  server: string;
  environment: string;
  version: string;
  check_id: string | null;
  protocol_version: string;
  server_info: { name: string; version: string } | null;
  tools: ToolDescription[];
  tools_hash: string;
  tool_count: number;
  observed_at: Date;
}

const toSnapshot = (r: SnapshotRow): ToolSnapshot => ({
  server: r.server,
  environment: r.environment,
  version: r.version,
  checkId: r.check_id,
  protocolVersion: r.protocol_version,
  serverInfo: r.server_info,
  tools: r.tools,
  toolsHash: r.tools_hash,
  toolCount: r.tool_count,
  observedAt: r.observed_at.toISOString(),
});

/** Keeps the newest snapshot per server, environment and version; an older observation never wins. */
export async function saveToolSnapshot(
  db: Queryable,
  orgId: string,
  snapshot: Omit<ToolSnapshot, 'toolCount'>,
): Promise<void> {
  await db.query(
    `INSERT INTO mcp_tool_snapshots (org_id, server, environment, version, check_id, protocol_version,
       server_info, tools, tools_hash, tool_count, observed_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (org_id, server, environment, version) DO UPDATE SET
       check_id = excluded.check_id, protocol_version = excluded.protocol_version,
       server_info = excluded.server_info, tools = excluded.tools, tools_hash = excluded.tools_hash,
       tool_count = excluded.tool_count, observed_at = excluded.observed_at
     WHERE mcp_tool_snapshots.observed_at <= excluded.observed_at`,
    [
      orgId,
      snapshot.server,
      snapshot.environment,
      snapshot.version,
      snapshot.checkId,
      snapshot.protocolVersion,
      snapshot.serverInfo === null ? null : JSON.stringify(snapshot.serverInfo),
      JSON.stringify(snapshot.tools),
      snapshot.toolsHash,
      snapshot.tools.length,
      snapshot.observedAt,
    ],
  );
}

/**
 * The newest `tools/list` seen for a version of a server: in `environment` when given, else in
 * whichever environment saw it last. For contract diffs between versions (canary analysis).
 */
export async function latestToolSnapshot(
  db: Queryable,
  scope: { orgId: string; server: string; version: string; environment?: string | undefined },
): Promise<ToolSnapshot | undefined> {
  const [row] = await db.query<SnapshotRow>(
    `SELECT * FROM mcp_tool_snapshots WHERE org_id = $1 AND server = $2 AND version = $3
       AND ($4::text IS NULL OR environment = $4)
     ORDER BY observed_at DESC LIMIT 1`,
    [scope.orgId, scope.server, scope.version, scope.environment ?? null],
  );
  return row ? toSnapshot(row) : undefined;
}
