/**
 * `version.vulnerable`: newly imported advisories affect a version that runs somewhere now (the
 * deployments' desired state). One event per version, routed to Slack and webhooks like the rest.
 */
import type { Queryable } from '../db/client.ts';
import { desiredState } from '../deploy/releases.ts';
import type { EventPublisher } from '../notify/events.ts';
import type { ScanResult } from './scan.ts';
import type { SeverityLevel } from './severity.ts';

const RANK: SeverityLevel[] = ['unknown', 'low', 'medium', 'high', 'critical'];

/** Publishes the events; returns how many versions it announced. */
export async function announceVulnerable(
  db: Queryable,
  publisher: EventPublisher,
  results: ScanResult[],
): Promise<number> {
  let announced = 0;
  for (const result of results) {
    const [version] = await db.query<{ version: string; server_id: string; slug: string }>(
      'SELECT v.version, v.server_id, s.slug FROM versions v JOIN servers s ON s.id = v.server_id WHERE v.id = $1',
      [result.versionId],
    );
    if (!version) continue;
    const desired = await desiredState(db, result.orgId, version.server_id);
    const runningIn = Object.entries(desired).flatMap(([environment, weights]) =>
      weights
        .filter((w) => w.version === version.version && w.weight > 0)
        .map((w) => ({ environment, weight: w.weight })),
    );
    if (runningIn.length === 0) continue;
    const advisories = await db.query<{
      id: string;
      aliases: string[];
      summary: string;
      severity: SeverityLevel;
      score: number | null;
    }>('SELECT id, aliases, summary, severity, score FROM advisories WHERE id = ANY($1) ORDER BY id', [
      result.added,
    ]);
    const worst = advisories.reduce<SeverityLevel>(
      (w, a) => (RANK.indexOf(a.severity) > RANK.indexOf(w) ? a.severity : w),
      'unknown',
    );
    const where = runningIn.map((r) => `${r.environment} (${r.weight}%)`).join(', ');
    await publisher.publish({
      type: 'version.vulnerable',
      orgId: result.orgId,
      server: version.slug,
      version: version.version,
      environment: runningIn[0]?.environment ?? null,
      labels: { severity: worst },
      summary: `${version.slug} ${version.version}, running in ${where}, is affected by ${advisories.map((a) => `${a.id} (${a.severity})`).join(', ')}`,
      data: { advisories, runningIn, severity: worst, state: 'vulnerable' },
    });
    announced++;
  }
  return announced;
}
