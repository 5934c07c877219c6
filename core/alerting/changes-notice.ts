/**
 * The top changes behind a firing alert: from the version it is judged against (a relative rule's
 * baseline, else the environment's stable version) to the alerted version, plus configuration
 * changes of the last day — "Changed: @acme/db 2.1.0 → 3.0.0; TIMEOUT_MS 30000 → 5000 (…, alice)".
 * Read only for alerts that begin firing, under the rule lock, so the stored notice is the one sent.
 */
import { changesForMessage } from '../changes/index.ts';
import type { Queryable } from '../db/client.ts';
import type { AlertNotice } from '../notify/events.ts';
import type { Rule } from './model.ts';
import type { ServerRollouts } from './rollouts.ts';

/** Rows a notice carries besides the summary line. */
const MAX_ROWS = 10;

export async function attachChanges(
  tx: Queryable,
  rule: Rule,
  notices: AlertNotice[],
  rollouts: ServerRollouts,
  now: number,
): Promise<void> {
  for (const notice of notices) {
    if (notice.status !== 'firing' || notice.version === null || notice.environment === null) continue;
    const baseline = notice.baselineVersion ?? rollouts.stable.get(notice.environment) ?? null;
    const changes = await changesForMessage(
      tx,
      rule.orgId,
      { server: rule.server, environment: notice.environment, candidate: notice.version, baseline },
      now,
    );
    notice.changes = changes
      ? {
          summary: changes.summary,
          baseline: changes.baseline,
          rows: changes.rows.slice(0, MAX_ROWS).map((r) => ({ ...r })),
        }
      : null;
  }
}
