/**
 * Scheduled imports (PYLEE_ADVISORIES_URL): each URL's OSV export is downloaded and imported as the
 * `default` org's system principal, then `version.vulnerable` is announced for running versions an
 * import newly affects. One URL failing does not stop the others; the error names the URL.
 */
import type { Db } from '../db/client.ts';
import { AppError } from '../errors.ts';
import type { EventPublisher } from '../notify/events.ts';
import { findOrg, systemPrincipal } from '../orgs.ts';
import { importAdvisories, type ImportStats } from './advisories.ts';
import { announceVulnerable } from './events.ts';

export interface UrlImport {
  url: string;
  ok: boolean;
  stats?: Omit<ImportStats, 'newlyAffected'> & { announced: number };
  error?: string;
}

export async function importFromUrls(deps: {
  db: Db;
  publisher: EventPublisher;
  urls: string[];
  timeoutMs?: number;
}): Promise<UrlImport[]> {
  const org = await findOrg(deps.db, 'default');
  if (!org) return deps.urls.map((url) => ({ url, ok: false, error: 'the default org does not exist yet' }));
  const ctx = { principal: systemPrincipal(org) };
  const results: UrlImport[] = [];
  for (const url of deps.urls) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(deps.timeoutMs ?? 10 * 60_000) });
      if (!response.ok) throw new Error(`HTTP ${response.status} ${response.statusText}`);
      const zip = new Uint8Array(await response.arrayBuffer());
      const { newlyAffected, ...stats } = await importAdvisories(deps.db, ctx, { zip }, { source: url });
      const announced = await announceVulnerable(deps.db, deps.publisher, newlyAffected);
      results.push({ url, ok: true, stats: { ...stats, announced } });
    } catch (error) {
      const why =
        error instanceof AppError
          ? error.message
          : String((error as Error).cause ?? (error as Error).message);
      results.push({ url, ok: false, error: `${url}: ${why}` });
    }
  }
  return results;
}
