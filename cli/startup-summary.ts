import type { Config } from '#core/config.ts';

/** Where the admin token of org `default` is, for the start-up summary. */
export type TokenWhere = 'printed' | 'bootstrap' | 'earlier';

/**
 * The short block `pylee start` ends with on a terminal: what runs, the addresses a person opens or
 * points an SDK at, and where the admin token is.
 */
export function startupSummary(options: {
  config: Pick<Config, 'dataDir' | 'databaseUrl' | 'clickhouseUrl' | 'redisUrl'>;
  version: string;
  roles: readonly { name: string; url?: string | undefined }[];
  token: TokenWhere;
}): string {
  const { config, roles } = options;
  const url = (name: string) => roles.find((r) => r.name === name)?.url;
  const embedded = [
    !config.databaseUrl && 'PGlite',
    !config.clickhouseUrl && 'chDB',
    !config.redisUrl && 'redis-server',
  ].filter(Boolean);
  const stores =
    embedded.length > 0 ? `embedded ${embedded.join(', ')} in ${config.dataDir}` : 'server stores';
  const lines = [
    ``,
    `Pylee ${options.version} is running: ${roles.map((r) => r.name).join(', ')} (${stores})`,
    ``,
  ];
  const api = url('api');
  if (api) {
    lines.push(`  Web UI       ${api}/`, `  API docs     ${api}/api/docs`);
  }
  const otlp = url('collector');
  if (otlp) lines.push(`  OTLP/HTTP    ${otlp}  (POST /v1/traces, /v1/metrics with an ingest key)`);
  const gateway = url('gateway');
  if (gateway) {
    lines.push(`  MCP gateway  ${gateway}/{org}/{server}/{environment}/mcp  (a token with connect)`);
  }
  if (api) {
    const token = {
      printed: 'printed above, this once: keep it safe',
      bootstrap: 'the value of PYLEE_BOOTSTRAP_TOKEN',
      earlier: "printed at this data dir's first start; `pylee tokens create` makes more",
    }[options.token];
    lines.push(`  Admin token  ${token}`);
  }
  lines.push(``, `Stop with Ctrl-C.`, ``);
  return lines.join('\n');
}
