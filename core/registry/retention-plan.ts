/**
 * Version retention, pure: which versions of a server a policy retires and why. No clock and no
 * store: `retention.ts` reads the facts (versions, lines, what runs where, deployment history) and
 * passes `now`, so a property test can drive this over random histories.
 *
 * Rules, in the order a version is checked:
 * 1. an already retired version is left alone (retired is final);
 * 2. never retired, whatever the policy: a version running in any environment (its stable release),
 *    one pinned by an open deployment (the version it rolls out, or the one it replaces), and the last
 *    known good version of any environment (where a rollback there would return);
 * 3. the newest `keepPerLine` non-retired versions of each line, by semver precedence (pre-releases
 *    count as members of their line like any other version: 1.5.0-rc.1 is in 1.x, below 1.5.0);
 * 4. anything deployed to, or running in, any environment in the last `keepDeployedWithinDays` days;
 * everything else is retired.
 */
import semver from 'semver';
import type { Status } from './lifecycle.ts';
import { lineOf, type LinePattern } from './lines.ts';

export interface RetentionRules {
  /** The newest N versions of each line are kept (N ≥ 1). */
  keepPerLine: number;
  /** Anything deployed (or running) anywhere in the last D days is kept; 0: this rule keeps nothing. */
  keepDeployedWithinDays: number;
}

export interface RetentionFacts {
  versions: readonly { version: string; status: Status }[];
  /** The server's declared lines; a version outside them is in its implicit `MAJOR.x` line. */
  lines: readonly LinePattern[];
  /** Per environment: the version running there at 100 % and its last known good (rollback target). */
  environments: readonly { name: string; running: string | null; lastKnownGood: string | null }[];
  /** Open (active) deployments: the version they roll out and the one they replace. */
  open: readonly { id: string; environment: string; version: string; previousVersion: string | null }[];
  /**
   * When versions were deployed or ran: `deployed` (a release or a deployment began at `at`) and
   * `ran` (a release there was replaced at `at`). Older entries than the window may be left out.
   */
  history: readonly { version: string; environment: string; kind: 'deployed' | 'ran'; at: number }[];
}

export interface RetentionDecision {
  version: string;
  status: Status;
  line: string;
  action: 'keep' | 'retire';
  /** Why: every rule that keeps it, or the one sentence saying why it goes. */
  reasons: string[];
}

const DAY_MS = 86_400_000;

/** "3 hours ago", "2 days ago": how long before `now`. */
export function ago(at: number, now: number): string {
  const ms = Math.max(0, now - at);
  if (ms < 3_600_000) return 'less than an hour ago';
  if (ms < DAY_MS) {
    const h = Math.floor(ms / 3_600_000);
    return `${h} hour${h === 1 ? '' : 's'} ago`;
  }
  const d = Math.floor(ms / DAY_MS);
  return `${d} day${d === 1 ? '' : 's'} ago`;
}

const ordinal = (n: number) => {
  const s = n % 100 >= 11 && n % 100 <= 13 ? 'th' : (['th', 'st', 'nd', 'rd'][n % 10] ?? 'th');
  return `${n}${s}`;
};

/** The decision for every version of a server, highest version first. */
export function retentionDecisions(
  rules: RetentionRules,
  facts: RetentionFacts,
  now: number,
): RetentionDecision[] {
  const since = now - rules.keepDeployedWithinDays * DAY_MS;
  const protect = new Map<string, string[]>();
  const add = (map: Map<string, string[]>, version: string, reason: string) => {
    const list = map.get(version) ?? [];
    if (!list.includes(reason)) list.push(reason);
    map.set(version, list);
  };
  for (const env of facts.environments) {
    if (env.running) add(protect, env.running, `running in ${env.name}`);
    if (env.lastKnownGood) add(protect, env.lastKnownGood, `last known good in ${env.name}`);
  }
  for (const d of facts.open) {
    add(protect, d.version, `pinned by open deployment ${d.id} (${d.environment})`);
    if (d.previousVersion) {
      add(
        protect,
        d.previousVersion,
        `pinned by open deployment ${d.id} (${d.environment}, the version it replaces)`,
      );
    }
  }
  // The latest deployment or run of each version inside the window, for one reason per version.
  const recent = new Map<string, { environment: string; kind: 'deployed' | 'ran'; at: number }>();
  if (rules.keepDeployedWithinDays > 0) {
    for (const h of facts.history) {
      if (h.at < since || h.at > now) continue;
      const seen = recent.get(h.version);
      if (!seen || h.at > seen.at) recent.set(h.version, h);
    }
  }

  const sorted = [...facts.versions].sort((a, b) => semver.rcompare(a.version, b.version));
  const rank = new Map<string, number>();
  const perLine = new Map<string, number>();
  for (const v of sorted) {
    if (v.status === 'retired') continue;
    const line = lineOf(v.version, facts.lines);
    const n = (perLine.get(line) ?? 0) + 1;
    perLine.set(line, n);
    rank.set(v.version, n);
  }

  return sorted.map((v) => {
    const line = lineOf(v.version, facts.lines);
    const base = { version: v.version, status: v.status, line };
    if (v.status === 'retired') return { ...base, action: 'keep', reasons: ['already retired'] };
    const reasons = [...(protect.get(v.version) ?? [])];
    const n = rank.get(v.version) as number;
    if (n <= rules.keepPerLine) reasons.push(`newest ${rules.keepPerLine} of line ${line}`);
    const r = recent.get(v.version);
    if (r) {
      reasons.push(
        r.kind === 'deployed'
          ? `deployed to ${r.environment} ${ago(r.at, now)}`
          : `ran in ${r.environment} until ${ago(r.at, now)}`,
      );
    }
    if (reasons.length > 0) return { ...base, action: 'keep', reasons };
    const window =
      rules.keepDeployedWithinDays > 0
        ? `; not deployed anywhere in the last ${rules.keepDeployedWithinDays} day${rules.keepDeployedWithinDays === 1 ? '' : 's'}`
        : '';
    return {
      ...base,
      action: 'retire',
      reasons: [
        `${ordinal(n)} newest of line ${line}, beyond the newest ${rules.keepPerLine}${window}; not running, pinned or last known good anywhere`,
      ],
    };
  });
}
