/**
 * What changed, for the messages people are paged with (alerts, canary verdicts): the changes
 * from the version a candidate is judged against, plus recent configuration events — read as
 * Pylee, never failing the message: a version only telemetry knows, or a read that fails, gives
 * none rather than no message.
 */
import type { Queryable } from '../db/client.ts';
import { systemPrincipal } from '../orgs.ts';
import { versionChanges } from './changes.ts';
import type { ChangeRow } from './diff.ts';
import { configurationEvents, eventRow } from './events.ts';
import { summarizeChanges } from './summary.ts';

export interface MessageChanges {
  /** `Changed: @acme/db 2.1.0 → 3.0.0; TIMEOUT_MS 30000 → 5000 (server+production, 2 h ago, alice)`, '' for none. */
  summary: string;
  /** The version the changes are counted from; null: configuration events only. */
  baseline: string | null;
  rows: ChangeRow[];
}

/** Configuration events are looked for this far back (a day: what an on-call person asks about). */
export const MESSAGE_EVENTS_MS = 24 * 3_600_000;

export async function changesForMessage(
  db: Queryable,
  orgId: string,
  q: { server: string; environment: string; candidate: string; baseline: string | null },
  now = Date.now(),
): Promise<MessageChanges | null> {
  const from = new Date(now - MESSAGE_EVENTS_MS);
  const to = new Date(now);
  try {
    if (q.baseline && q.baseline !== q.candidate) {
      const principal = systemPrincipal({ id: orgId, slug: orgId });
      const c = await versionChanges(db, principal, { ...q, baseline: q.baseline, from, to }, now);
      return { summary: c.summary, baseline: q.baseline, rows: c.changes };
    }
    const events = await configurationEvents(db, orgId, {
      server: q.server,
      environment: q.environment,
      versions: [q.candidate],
      from,
      to,
    });
    const rows = events.map(eventRow);
    return { summary: summarizeChanges(rows, 3, now), baseline: null, rows };
  } catch {
    return null;
  }
}
