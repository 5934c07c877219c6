import type { Processor } from 'bullmq';
import type { Db } from '#core/db/client.ts';
import type { Logger } from '#core/logger.ts';
import type { EventPublisher } from '#core/notify/events.ts';
import { importFromUrls, type UrlImport } from '#core/vulns/fetch-import.ts';

/** Imports the configured OSV exports (PYLEE_ADVISORIES_URL); a failed URL is logged and retried next time. */
export function advisoriesImportProcessor(deps: {
  db: Db;
  logger: Logger;
  publisher: EventPublisher;
  urls: string[];
}): Processor<unknown, UrlImport[]> {
  return async () => {
    const results = await importFromUrls(deps);
    for (const r of results) {
      if (r.ok)
        deps.logger.info(
          { url: r.url, imported: r.stats?.imported, announced: r.stats?.announced },
          'advisories imported',
        );
      else deps.logger.warn({ url: r.url, err: r.error }, 'advisories import failed');
    }
    return results;
  };
}
