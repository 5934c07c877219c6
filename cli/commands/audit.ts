import type { ChainReport } from '#core/audit/log.ts';
import { verifyAuditChain } from '#core/audit/log.ts';
import { loadConfig } from '#core/config.ts';
import { lockDataDir } from '#core/data-dir.ts';
import { openDb } from '#core/db/client.ts';
import { NotFoundError } from '#core/errors.ts';
import { DEFAULT_ORG, findOrg } from '#core/orgs.ts';
import { api, type ClientOptions } from '../client.ts';

/**
 * Checks an org's audit hash chain. With a token it asks the running API; without one it opens
 * the control-plane store itself (embedded PGlite only when no Pylee process holds the data dir).
 */
export async function auditVerify(options: {
  client: ClientOptions;
  org?: string | undefined;
}): Promise<ChainReport & { org: string }> {
  if (options.client.token) {
    const report = await api<ChainReport>(options.client, 'GET', '/audit/verify');
    const me = await api<{ org: { slug: string } }>(options.client, 'GET', '/me');
    return { ...report, org: me.org.slug };
  }
  const config = loadConfig();
  const lock = config.databaseUrl ? undefined : lockDataDir(config.dataDir);
  const db = await openDb(config);
  try {
    const slug = options.org ?? DEFAULT_ORG;
    const org = await findOrg(db, slug);
    if (!org) throw new NotFoundError(`org @${slug} was not found`, 'org-not-found');
    return { ...(await verifyAuditChain(db, org.id)), org: slug };
  } finally {
    await db.close();
    lock?.release();
  }
}

export function describeReport(report: ChainReport & { org: string }): string {
  if (report.ok) return `audit chain of @${report.org} is intact: ${report.checked} events checked`;
  const bad = report.firstBad;
  return `audit chain of @${report.org} is BROKEN at event ${bad?.seq}${bad?.id ? ` (${bad.id})` : ''}: ${bad?.reason}; ${report.checked} events before it are intact`;
}
