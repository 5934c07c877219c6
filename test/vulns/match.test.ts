import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ORDERINGS, normaliseName, nugetOrdering, type Ecosystem } from '#core/vulns/ecosystems.ts';
import { fixedVersions, inRange, isAffected } from '#core/vulns/match.ts';
import { checkRecord, type OsvEvent, type OsvRecord } from '#core/vulns/osv.ts';
import { severityOf } from '#core/vulns/severity.ts';
import { seededRandom } from '#test/helpers/random.ts';

const FIXTURES = path.join(import.meta.dirname, '../fixtures/osv');
const record = (dir: string, id: string): OsvRecord =>
  checkRecord(JSON.parse(fs.readFileSync(path.join(FIXTURES, dir, `${id}.json`), 'utf8')), id);

/** Affected per the record, for a Pylee package (registry type, identifier as a version lists it). */
function affected(r: OsvRecord, ecosystem: Ecosystem, name: string, version: string): boolean {
  const osvName = { npm: 'npm', pypi: 'PyPI', nuget: 'NuGet' }[ecosystem];
  return (r.affected ?? []).some(
    (a) =>
      a.package?.ecosystem === osvName &&
      normaliseName(ecosystem, a.package.name) === normaliseName(ecosystem, name) &&
      isAffected(ecosystem, a, version),
  );
}

const entriesOf = (r: OsvRecord, osvName: string) =>
  (r.affected ?? []).filter((a) => a.package?.ecosystem === osvName);

describe('matching real OSV records (answers from the advisories)', () => {
  it('npm: SEMVER ranges, several per package, and an ECOSYSTEM range', () => {
    const acorn = record('npm', 'GHSA-6chw-6frg-f759'); // <5.7.4 from 5.5.0, <6.4.1 from 6, <7.1.1 from 7
    const answers: [string, boolean][] = [
      ['5.4.1', false],
      ['5.5.0', true],
      ['5.7.3', true],
      ['5.7.4', false],
      ['6.0.0', true],
      ['6.4.0', true],
      ['6.4.1', false],
      ['7.1.0', true],
      ['7.1.1', false],
      ['8.0.0', false],
    ];
    for (const [v, want] of answers) expect([v, affected(acorn, 'npm', 'acorn', v)]).toEqual([v, want]);
    expect(fixedVersions('npm', entriesOf(acorn, 'npm'))).toEqual(['5.7.4', '6.4.1', '7.1.1']);

    const grpc = record('npm', 'GHSA-7v5v-9h63-cj86'); // fixed in 1.8.22, 1.9.15, 1.10.9
    expect(affected(grpc, 'npm', '@grpc/grpc-js', '1.8.21')).toBe(true);
    expect(affected(grpc, 'npm', '@grpc/grpc-js', '1.8.22')).toBe(false);
    expect(affected(grpc, 'npm', '@grpc/grpc-js', '1.9.14')).toBe(true);
    expect(affected(grpc, 'npm', '@grpc/grpc-js', '1.10.9')).toBe(false);
    expect(affected(grpc, 'npm', '@grpc/grpc-js', '1.11.0')).toBe(false);
    // npm names are exact: another package of the same words is not this one.
    expect(affected(grpc, 'npm', '@GRPC/grpc-js', '1.8.21')).toBe(false);

    const regex = record('npm', 'GHSA-93q8-gq69-wqmw'); // four major lines, each fixed at its own patch
    expect(
      ['3.0.0', '3.0.1', '4.1.0', '4.1.1', '5.0.0', '5.0.1', '6.0.0', '6.0.1', '2.1.1'].map((v) =>
        affected(regex, 'npm', 'ansi-regex', v),
      ),
    ).toEqual([true, false, true, false, true, false, true, false, false]);
    // A malicious release: a versions list and no range.
    const mal = record('npm', 'MAL-2025-46966');
    expect(affected(mal, 'npm', 'ansi-regex', '6.2.1')).toBe(true);
    expect(affected(mal, 'npm', 'ansi-regex', '6.2.0')).toBe(false);
    expect(fixedVersions('npm', entriesOf(mal, 'npm'))).toEqual([]);

    // brace-expansion: four lines, two of them also listing the affected version.
    const brace = record('npm', 'GHSA-v6h2-p8h4-qcjw');
    expect(
      ['1.1.11', '1.1.12', '2.0.1', '2.0.2', '3.0.0', '3.0.1', '4.0.0', '4.0.1', '0.9.0'].map((v) =>
        affected(brace, 'npm', 'brace-expansion', v),
      ),
    ).toEqual([true, false, true, false, true, false, true, false, false]);
    // braces: two advisories, one without aliases, one without a vector.
    for (const id of ['GHSA-cwfw-4gq5-mrqx', 'GHSA-g95f-p29q-9xw4']) {
      expect([
        affected(record('npm', id), 'npm', 'braces', '2.3.0'),
        affected(record('npm', id), 'npm', 'braces', '2.3.1'),
      ]).toEqual([true, false]);
    }
    expect(affected(record('npm', 'GHSA-grv7-fg5c-xmjg'), 'npm', 'braces', '3.0.2')).toBe(true);

    const ansi = record('npm', 'GHSA-whgm-jr23-g3j9');
    expect(affected(ansi, 'npm', 'ansi-html', '0.0.7')).toBe(true);
    expect(affected(ansi, 'npm', 'ansi-html', '0.0.8')).toBe(false);
  });

  it('one record, several ecosystems: each matches its own package and reports only its own fixes', () => {
    const jquery = record('npm', 'GHSA-gxr4-xjj5-5px2'); // npm, NuGet, RubyGems jquery-rails (fixed 4.4.0), Maven
    expect(affected(jquery, 'npm', 'jquery', '3.4.1')).toBe(true);
    expect(affected(jquery, 'npm', 'jquery', '1.1.4')).toBe(false);
    expect(affected(jquery, 'npm', 'jquery', '3.5.0')).toBe(false);
    expect(affected(jquery, 'nuget', 'jQuery', '3.4.1')).toBe(true); // NuGet ids are case-insensitive
    expect(affected(jquery, 'nuget', 'jQuery', '3.5.0.0')).toBe(false); // 3.5.0.0 is 3.5.0
    expect(affected(jquery, 'pypi', 'jquery', '3.4.1')).toBe(false); // no PyPI entry: no query without an ecosystem
    for (const eco of ['npm', 'NuGet']) {
      expect(fixedVersions(eco === 'npm' ? 'npm' : 'nuget', entriesOf(jquery, eco))).toEqual(['3.5.0']);
    }
  });

  it('PyPI: PEP 440 order, PEP 503 names, the versions list, GIT ranges left to it', () => {
    const cors = record('PyPI', 'PYSEC-2020-43');
    expect(affected(cors, 'pypi', 'Flask_CORS', '3.0.8')).toBe(true); // normalised to flask-cors
    expect(affected(cors, 'pypi', 'flask.cors', '3.0.9')).toBe(false);
    expect(affected(cors, 'pypi', 'flask-cors', '0.0.0.dev3')).toBe(true);
    expect(affected(cors, 'pypi', 'flask-cors', '2.0.0rc1')).toBe(true);

    const django = record('PyPI', 'PYSEC-2021-98'); // <2.2.24, [3.0, 3.1.12), [3.2, 3.2.4)
    const answers: [string, boolean][] = [
      ['2.2.23', true],
      ['2.2.24', false],
      ['3.0', true],
      ['3.1.11', true],
      ['3.1.12', false],
      ['3.2rc1', false], // after 3.1.12, before 3.2: between the ranges
      ['3.2.0', true], // = 3.2 under PEP 440
      ['3.2.3', true],
      ['3.2.4', false],
      ['4.0', false],
    ];
    for (const [v, want] of answers) expect([v, affected(django, 'pypi', 'Django', v)]).toEqual([v, want]);
    expect(fixedVersions('pypi', entriesOf(django, 'PyPI'))).toEqual(['2.2.24', '3.1.12', '3.2.4']);

    const flask = record('PyPI', 'PYSEC-2023-62'); // GIT range with two fixed commits; ECOSYSTEM <2.2.5, [2.3.0, 2.3.2)
    expect(
      ['2.2.4', '2.2.5', '2.3.0', '2.3.1', '2.3.2', '2.2.5.post1'].map((v) =>
        affected(flask, 'pypi', 'Flask', v),
      ),
    ).toEqual([true, false, true, true, false, false]);
    expect(fixedVersions('pypi', entriesOf(flask, 'PyPI'))).toEqual(['2.2.5', '2.3.2']);

    const requests = record('PyPI', 'PYSEC-2023-74'); // GIT range + ECOSYSTEM [2.3.0, 2.31.0)
    expect(affected(requests, 'pypi', 'requests', '2.30.0')).toBe(true);
    expect(affected(requests, 'pypi', 'requests', '2.31.0')).toBe(false);
    expect(affected(requests, 'pypi', 'requests', '2.2.1')).toBe(false);
    // the GIT range's fixed commit is not a PyPI fixed version
    expect(fixedVersions('pypi', entriesOf(requests, 'PyPI'))).toEqual(['2.31.0']);
  });

  it("NuGet: NuGet's order (four parts, case-insensitive pre-release)", () => {
    const json = record('NuGet', 'GHSA-5crp-9r3c-p9vr');
    expect(affected(json, 'nuget', 'Newtonsoft.Json', '12.0.3')).toBe(true);
    expect(affected(json, 'nuget', 'newtonsoft.json', '13.0.1-beta1')).toBe(true);
    expect(affected(json, 'nuget', 'Newtonsoft.Json', '13.0.1')).toBe(false);
    expect(affected(json, 'nuget', 'Newtonsoft.Json', '13.0.1.0')).toBe(false);
    const cmp = nugetOrdering.compare;
    expect(cmp('1.0', '1.0.0.0')).toBe(0);
    expect(cmp('1.0.0-ALPHA', '1.0.0-alpha')).toBe(0);
    expect(cmp('1.0.0-alpha.2', '1.0.0-alpha.10')).toBeLessThan(0);
    expect(cmp('1.0.0-2', '1.0.0-alpha')).toBeLessThan(0);
    expect(cmp('1.0.0-rc', '1.0.0')).toBeLessThan(0);
    expect(cmp('1.0.0.1', '1.0.1')).toBeLessThan(0);
    expect(cmp('1.0.0+build', '1.0.0')).toBe(0);
    expect(nugetOrdering.valid('1.0.0.0.0')).toBe(false);
  });

  it('severity from the CVSS vector, else the database label', () => {
    expect(severityOf(record('npm', 'GHSA-gxr4-xjj5-5px2'))).toEqual({
      level: 'medium',
      score: 6.9,
      vector: 'CVSS:3.1/AV:N/AC:H/PR:N/UI:R/S:C/C:H/I:L/A:N',
    });
    expect(severityOf(record('NuGet', 'GHSA-5crp-9r3c-p9vr'))).toMatchObject({ level: 'high', score: 7.5 });
    // v4 is preferred over v3, and its base score leaves the threat metrics (E:P) out, as GitHub shows it.
    expect(severityOf(record('npm', 'GHSA-v6h2-p8h4-qcjw'))).toMatchObject({ level: 'low', score: 2.3 });
    expect(severityOf(record('npm', 'GHSA-grv7-fg5c-xmjg'))).toMatchObject({ level: 'high', score: 7.5 });
    expect(severityOf(record('npm', 'GHSA-cwfw-4gq5-mrqx'))).toEqual({
      level: 'low',
      score: null,
      vector: null,
    });
    // The 2022 version of the record had no vector, only GitHub's label.
    expect(severityOf(record('NuGet-2022', 'GHSA-5crp-9r3c-p9vr'))).toEqual({
      level: 'low',
      score: null,
      vector: null,
    });
    expect(
      severityOf({
        id: 'X-1',
        modified: '2024-01-01T00:00:00Z',
        severity: [
          { type: 'CVSS_V4', score: 'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N' },
        ],
      }),
    ).toMatchObject({ level: 'critical', score: 9.3 });
  });

  it('refuses a record that is not OSV, naming the JSON path', () => {
    const bad = (value: unknown) => () => checkRecord(value, 'npm/bad.json');
    expect(bad([])).toThrow('npm/bad.json: the document is not a JSON object');
    expect(bad({ id: 'X-1' })).toThrow('npm/bad.json: modified must be a string');
    const base = { id: 'X-1', modified: '2024-01-01T00:00:00Z' };
    expect(
      bad({ ...base, affected: [{ ranges: [{ type: 'SEMVER', events: [{ fixed: '1.0.0' }] }] }] }),
    ).toThrow('affected[0].ranges[0].events needs at least one introduced event');
    expect(
      bad({
        ...base,
        affected: [{ ranges: [{ type: 'SEMVER', events: [{ introduced: '0', fixed: '1.0.0' }] }] }],
      }),
    ).toThrow(
      'affected[0].ranges[0].events[0] must have exactly one of introduced, fixed, last_affected, limit',
    );
    expect(bad({ ...base, affected: [{ ranges: [{ type: 'RANGE', events: [] }] }] })).toThrow(
      'affected[0].ranges[0].type must be one of SEMVER, ECOSYSTEM, GIT',
    );
  });
});

// ---- property: the schema's evaluation against a sweep over the sorted version list ----

const GENERATORS: Record<Ecosystem, (r: () => number) => string> = {
  npm: (r) => {
    const n = () => Math.floor(r() * 4);
    const pre = r() < 0.3 ? `-${['alpha', 'beta', 'rc'][n() % 3]}.${n()}` : '';
    return `${n()}.${n()}.${n()}${pre}`;
  },
  pypi: (r) => {
    const n = () => Math.floor(r() * 4);
    const micro = r() < 0.5 ? `.${n()}` : '';
    const suffix = r() < 0.3 ? ['a1', 'b2', 'rc1', '.post1', '.dev1'][Math.floor(r() * 5)] : '';
    return `${n()}.${n()}${micro}${suffix}`;
  },
  nuget: (r) => {
    const n = () => Math.floor(r() * 4);
    const rev = r() < 0.3 ? `.${n()}` : '';
    const pre = r() < 0.3 ? `-${['Alpha', 'beta', 'RC'][n() % 3]}${r() < 0.5 ? `.${n()}` : ''}` : '';
    return `${n()}.${n()}.${n()}${rev}${pre}`;
  },
};

/** Distinct (under the ordering) versions, sorted. */
function sortedVersions(eco: Ecosystem, r: () => number, count: number): string[] {
  const order = ORDERINGS[eco];
  const out: string[] = [];
  for (let i = 0; i < count * 3 && out.length < count; i++) {
    const v = GENERATORS[eco](r);
    if (order.valid(v) && !out.some((o) => order.compare(o, v) === 0)) out.push(v);
  }
  return out.sort(order.compare);
}

/** Brute force: walk the sorted list once, switching on and off at the events' versions. */
function sweep(sorted: string[], events: OsvEvent[]): boolean[] {
  const at = (v: string) => events.filter((e) => Object.values(e)[0] === v);
  const limits = events.filter((e) => e.limit !== undefined).map((e) => sorted.indexOf(e.limit as string));
  let on = events.some((e) => e.introduced === '0');
  let offAfter = false;
  return sorted.map((v, i) => {
    if (offAfter) [on, offAfter] = [false, false];
    for (const e of at(v)) {
      if (e.introduced !== undefined) on = true;
      if (e.fixed !== undefined) on = false;
      if (e.last_affected !== undefined) offAfter = true;
    }
    return on && (limits.length === 0 || limits.some((l) => i < l));
  });
}

describe('range evaluation (property, seeded)', () => {
  for (const eco of ['npm', 'pypi', 'nuget'] as const) {
    it(`${eco}: the schema's evaluation equals a sweep over sorted versions`, () => {
      const r = seededRandom(eco.length * 7919);
      const order = ORDERINGS[eco];
      for (let round = 0; round < 300; round++) {
        const versions = sortedVersions(eco, r, 12);
        // Events on distinct versions, alternating introduced / closing, as ranges are written.
        const picks = versions.filter(() => r() < 0.4);
        const closing = r() < 0.5 ? 'fixed' : 'last_affected';
        const events: OsvEvent[] = picks.map((v, i) => (i % 2 === 0 ? { introduced: v } : { [closing]: v }));
        if (events.length === 0 || r() < 0.3) events.unshift({ introduced: '0' });
        if (r() < 0.25) {
          const limit = versions[Math.floor(r() * versions.length)] as string;
          if (!picks.includes(limit)) events.push({ limit });
        }
        // Shuffled: the evaluation sorts the events itself.
        events.sort(() => r() - 0.5);
        const expected = sweep(versions, events);
        const actual = versions.map((v) => inRange(order, { type: 'ECOSYSTEM', events }, v));
        expect({ versions, events, actual }).toEqual({ versions, events, actual: expected });
      }
    });
  }
});
