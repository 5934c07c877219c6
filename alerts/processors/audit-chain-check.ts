import type { Processor } from 'bullmq';
import { verifyAuditChain, type ChainReport } from '#core/audit/log.ts';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import { listOrgs } from '#core/orgs.ts';

export type AuditChainResult = Record<string, ChainReport>;

/** Re-verifies every org's audit hash chain, so tampering is noticed without anyone asking. */
export function auditChainCheckProcessor(deps: {
  db: Db;
  logger: Logger;
}): Processor<unknown, AuditChainResult> {
  return async () => {
    const results: AuditChainResult = {};
    for (const org of await listOrgs(deps.db)) {
      const report = await verifyAuditChain(deps.db, org.id);
      results[org.slug] = report;
      if (!report.ok)
        deps.logger.error({ org: org.slug, firstBad: report.firstBad }, 'audit chain is broken');
    }
    return results;
  };
}
