import fc from 'fast-check';
import semver from 'semver';
import { describe, expect, it } from 'vitest';
import { STATUSES, type Status } from '#core/registry/lifecycle.ts';
import { lineOf, parseLine } from '#core/registry/lines.ts';
import { ago, retentionDecisions, type RetentionFacts } from '#core/registry/retention-plan.ts';

// The retention decision over random histories: versions across declared and implicit lines, deploys,
// rollbacks and open rollouts in four environments. Whatever the policy, the plan never retires a
// running, last-known-good or pinned version, keeps the newest N of every line and everything deployed
// within D days, and applying it is idempotent.

const DAY = 86_400_000;
const NOW = Date.UTC(2026, 11, 2, 12);
const ENVS = ['development', 'staging', 'canary', 'production'];

interface Release {
  version: string;
  releasedAt: number;
  replacedAt: number | null;
  rolledBack: boolean;
}

const versionArb = fc
  .tuple(
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 3 }),
    fc.integer({ min: 0, max: 3 }),
    fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
  )
  .map(([a, b, c, rc]) => `${a}.${b}.${c}${rc === undefined ? '' : `-rc.${rc}`}`);

const historyArb = fc.record({
  versions: fc.uniqueArray(fc.tuple(versionArb, fc.constantFrom(...STATUSES)), {
    minLength: 1,
    maxLength: 30,
    selector: ([v]) => v,
  }),
  lines: fc.subarray(['1.x', '1.2.x', '2.x', '2.1.x', '0.3.x']),
  events: fc.array(
    fc.oneof(
      fc.record({
        type: fc.constant('deploy' as const),
        env: fc.nat(3),
        version: fc.nat(),
        at: fc.integer({ min: 0, max: 90 * DAY }),
      }),
      fc.record({
        type: fc.constant('rollback' as const),
        env: fc.nat(3),
        at: fc.integer({ min: 0, max: 90 * DAY }),
      }),
      fc.record({
        type: fc.constant('open' as const),
        env: fc.nat(3),
        version: fc.nat(),
        at: fc.integer({ min: 0, max: 90 * DAY }),
      }),
    ),
    { maxLength: 40 },
  ),
  keepPerLine: fc.integer({ min: 1, max: 5 }),
  keepDeployedWithinDays: fc.integer({ min: 0, max: 60 }),
});

type History = typeof historyArb extends fc.Arbitrary<infer T> ? T : never;

/** What environment_releases and deployments would hold after the events, as core/deploy keeps them. */
function simulate(h: History) {
  const versions = h.versions.map(([v]) => v);
  const releases: Release[][] = ENVS.map(() => []);
  const deployments: { version: string; environment: string; at: number }[] = [];
  const open = new Map<number, { id: string; version: string; previousVersion: string | null }>();
  const events = [...h.events].sort((a, b) => b.at - a.at); // at = how long before NOW
  const current = (env: number) => releases[env]?.find((r) => r.replacedAt === null);
  for (const [i, e] of events.entries()) {
    const at = NOW - e.at;
    const list = releases[e.env] as Release[];
    if (e.type === 'deploy') {
      const version = versions[e.version % versions.length] as string;
      const cur = current(e.env);
      if (cur) cur.replacedAt = at;
      list.push({ version, releasedAt: at, replacedAt: null, rolledBack: false });
      deployments.push({ version, environment: ENVS[e.env] as string, at });
    } else if (e.type === 'rollback') {
      const cur = current(e.env);
      if (!cur) continue;
      cur.replacedAt = at;
      cur.rolledBack = true;
      const good = [...list].reverse().find((r) => !r.rolledBack && r.version !== cur.version);
      if (good) list.push({ version: good.version, releasedAt: at, replacedAt: null, rolledBack: false });
    } else if (!open.has(e.env)) {
      const version = versions[e.version % versions.length] as string;
      open.set(e.env, { id: `d${i}`, version, previousVersion: current(e.env)?.version ?? null });
      deployments.push({ version, environment: ENVS[e.env] as string, at });
    }
  }
  return { releases, deployments, open };
}

function factsOf(h: History, statuses: Map<string, Status>): RetentionFacts {
  const { releases, deployments, open } = simulate(h);
  return {
    versions: [...statuses].map(([version, status]) => ({ version, status })),
    lines: h.lines.map(parseLine),
    environments: ENVS.map((name, i) => {
      const list = releases[i] as Release[];
      const running = list.find((r) => r.replacedAt === null)?.version ?? null;
      // releases.ts lastKnownGood: latest not rolled back, not the running one, not retired.
      const good = [...list]
        .reverse()
        .find((r) => !r.rolledBack && r.version !== running && statuses.get(r.version) !== 'retired');
      return { name, running, lastKnownGood: good?.version ?? null };
    }),
    open: [...open].map(([env, d]) => ({ ...d, environment: ENVS[env] as string })),
    history: [
      ...releases.flatMap((list, i) =>
        list.flatMap((r) => [
          { version: r.version, environment: ENVS[i] as string, kind: 'deployed' as const, at: r.releasedAt },
          ...(r.replacedAt === null
            ? []
            : [
                {
                  version: r.version,
                  environment: ENVS[i] as string,
                  kind: 'ran' as const,
                  at: r.replacedAt,
                },
              ]),
        ]),
      ),
      ...deployments.map((d) => ({ ...d, kind: 'deployed' as const })),
    ],
  };
}

describe('retention decisions over random histories', () => {
  it('never retire a running, last known good or pinned version; keep the newest N per line and recent deploys', () => {
    let retiring = 0;
    fc.assert(
      fc.property(historyArb, (h) => {
        const statuses = new Map(h.versions);
        const facts = factsOf(h, statuses);
        const rules = { keepPerLine: h.keepPerLine, keepDeployedWithinDays: h.keepDeployedWithinDays };
        const decisions = retentionDecisions(rules, facts, NOW);
        const retired = new Set(decisions.filter((d) => d.action === 'retire').map((d) => d.version));
        if (retired.size > 0) retiring++;

        // One decision per version, highest first; a retired version is never "retired again".
        expect(decisions.map((d) => d.version).sort()).toEqual([...statuses.keys()].sort());
        for (const d of decisions) {
          expect(d.reasons.length).toBeGreaterThan(0);
          if (d.status === 'retired')
            expect(d).toMatchObject({ action: 'keep', reasons: ['already retired'] });
        }
        for (const env of facts.environments) {
          if (env.running) expect(retired.has(env.running)).toBe(false);
          if (env.lastKnownGood) expect(retired.has(env.lastKnownGood)).toBe(false);
        }
        for (const d of facts.open) {
          expect(retired.has(d.version)).toBe(false);
          if (d.previousVersion) expect(retired.has(d.previousVersion)).toBe(false);
        }
        // The newest N non-retired versions of every line stay.
        const byLine = new Map<string, string[]>();
        for (const [v, s] of statuses) {
          if (s === 'retired') continue;
          const line = lineOf(v, facts.lines);
          byLine.set(line, [...(byLine.get(line) ?? []), v]);
        }
        for (const members of byLine.values()) {
          const newest = members.sort(semver.rcompare).slice(0, h.keepPerLine);
          for (const v of newest) expect(retired.has(v)).toBe(false);
        }
        // Anything deployed or running in the window stays.
        if (h.keepDeployedWithinDays > 0) {
          for (const e of facts.history) {
            if (e.at >= NOW - h.keepDeployedWithinDays * DAY) expect(retired.has(e.version)).toBe(false);
          }
        }

        // Applying the plan and planning again (last known good recomputed) retires nothing more.
        const after = new Map(statuses);
        for (const v of retired) after.set(v, 'retired');
        const again = retentionDecisions(rules, factsOf(h, after), NOW);
        expect(again.filter((d) => d.action === 'retire')).toEqual([]);
      }),
      { numRuns: 300 },
    );
    // Not vacuous: many histories do retire something.
    expect(retiring).toBeGreaterThan(50);
  });

  it('says why: newest of its line, recent deploy, running, and the retire reason', () => {
    const decisions = retentionDecisions(
      { keepPerLine: 2, keepDeployedWithinDays: 7 },
      {
        versions: [
          { version: '1.0.0', status: 'stable' },
          { version: '1.1.0', status: 'deprecated' },
          { version: '1.2.0', status: 'stable' },
          { version: '1.3.0', status: 'stable' },
          { version: '1.4.0-rc.1', status: 'release-candidate' },
          { version: '0.9.0', status: 'retired' },
        ],
        lines: [],
        environments: [{ name: 'production', running: '1.0.0', lastKnownGood: null }],
        open: [],
        history: [{ version: '1.1.0', environment: 'staging', kind: 'deployed', at: NOW - 2 * DAY }],
      },
      NOW,
    );
    expect(decisions.map((d) => [d.version, d.action, d.reasons])).toEqual([
      ['1.4.0-rc.1', 'keep', ['newest 2 of line 1.x']],
      ['1.3.0', 'keep', ['newest 2 of line 1.x']],
      [
        '1.2.0',
        'retire',
        [
          '3rd newest of line 1.x, beyond the newest 2; not deployed anywhere in the last 7 days; not running, pinned or last known good anywhere',
        ],
      ],
      ['1.1.0', 'keep', ['deployed to staging 2 days ago']],
      ['1.0.0', 'keep', ['running in production']],
      ['0.9.0', 'keep', ['already retired']],
    ]);
  });

  it('says how long ago in hours or days', () => {
    expect(ago(NOW - 10 * 60_000, NOW)).toBe('less than an hour ago');
    expect(ago(NOW - 3 * 3_600_000, NOW)).toBe('3 hours ago');
    expect(ago(NOW - DAY, NOW)).toBe('1 day ago');
    expect(ago(NOW - 12 * DAY, NOW)).toBe('12 days ago');
  });
});
