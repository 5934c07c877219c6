/**
 * Known answers for the real OSV records in test/fixtures/osv (its README says where each comes
 * from): for each record, versions its own ranges and summary say are affected or not, and the fixes
 * it names, written down from the advisory rather than from running the code. Severity scores were
 * computed from the vectors by an independent CVSS implementation (FIRST's algorithms in
 * @pandatix/js-cvss), not by the calculator Pylee uses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ECOSYSTEMS, normaliseName, type Ecosystem } from '#core/vulns/ecosystems.ts';
import { fixedVersions, isAffected } from '#core/vulns/match.ts';
import { checkRecord, type OsvAffected, type OsvRecord } from '#core/vulns/osv.ts';
import { severityOf } from '#core/vulns/severity.ts';

const FIXTURES = path.join(import.meta.dirname, '../fixtures/osv');
const load = (file: string): OsvRecord =>
  checkRecord(JSON.parse(fs.readFileSync(path.join(FIXTURES, file), 'utf8')), file);

/** One package's entries of a record, as the importer groups them: its ecosystem, then its normalised name. */
const entriesFor = (r: OsvRecord, eco: Ecosystem, name: string): OsvAffected[] =>
  (r.affected ?? []).filter(
    (a) =>
      a.package?.ecosystem === ECOSYSTEMS[eco] &&
      normaliseName(eco, a.package.name) === normaliseName(eco, name),
  );

interface Answer {
  file: string;
  eco: Ecosystem;
  /** The name as a Pylee version lists the package (normalised like the registry does). */
  name: string;
  affected: string[];
  notAffected: string[];
  fixed: string[];
}

/** Compares all of one answer at once, so a failure names every version that came out wrong. */
function check(answers: Answer[]): void {
  for (const a of answers) {
    const entries = entriesFor(load(a.file), a.eco, a.name);
    const hit = (v: string) => entries.some((e) => isAffected(a.eco, e, v));
    expect({
      record: a.file,
      name: a.name,
      wronglyClear: a.affected.filter((v) => !hit(v)),
      wronglyAffected: a.notAffected.filter(hit),
      fixed: fixedVersions(a.eco, entries),
    }).toEqual({ record: a.file, name: a.name, wronglyClear: [], wronglyAffected: [], fixed: a.fixed });
  }
}

describe('known answers from real advisories', () => {
  it('npm: last_affected ("<= X", no fix), several lines of one package, pre-releases below a fix', () => {
    check([
      // request <= 2.88.2 and @cypress/request <= 2.88.11, no fix: each package keeps its own bound.
      {
        file: 'npm/GHSA-p8p7-x288-28g6.json',
        eco: 'npm',
        name: 'request',
        affected: ['2.88.2', '2.0.0'],
        notAffected: ['2.88.3', '2.88.11', '3.0.0'],
        fixed: [],
      },
      {
        file: 'npm/GHSA-p8p7-x288-28g6.json',
        eco: 'npm',
        name: '@cypress/request',
        affected: ['2.88.11', '2.88.10'],
        notAffected: ['2.88.12', '3.0.0'],
        fixed: [],
      },
      // vm2 "versions up to 3.9.19", patches: none.
      {
        file: 'npm/GHSA-g644-9gfx-q4q4.json',
        eco: 'npm',
        name: 'vm2',
        affected: ['3.9.19', '3.9.0', '0.1.0'],
        notAffected: ['3.9.20', '3.10.0'],
        fixed: [],
      },
      // ws: [2.1.0, 5.2.4), [6.0.0, 6.2.3), [7.0.0, 7.5.10), [8.0.0, 8.17.1), one affected entry each.
      {
        file: 'npm/GHSA-3h5v-q93c-6h6q.json',
        eco: 'npm',
        name: 'ws',
        affected: ['2.1.0', '5.2.3', '6.0.0', '6.2.2', '7.5.9', '8.0.0', '8.17.0'],
        notAffected: ['2.0.0', '5.2.4', '5.3.0', '6.2.3', '7.5.10', '8.17.1', '8.18.0'],
        fixed: ['5.2.4', '6.2.3', '7.5.10', '8.17.1'],
      },
      // jsonwebtoken < 9.0.0 ("<= 8.5.1"): a pre-release of 9.0.0 sorts below it.
      {
        file: 'npm/GHSA-27h2-hvpr-p74q.json',
        eco: 'npm',
        name: 'jsonwebtoken',
        affected: ['8.5.1', '0.1.0', '9.0.0-beta.1'],
        notAffected: ['9.0.0', '9.0.2'],
        fixed: ['9.0.0'],
      },
      // moment < 2.29.2 (npm and NuGet Moment.js alike).
      {
        file: 'npm/GHSA-8hfj-j24r-96c4.json',
        eco: 'npm',
        name: 'moment',
        affected: ['2.29.1', '2.0.0'],
        notAffected: ['2.29.2', '2.30.1'],
        fixed: ['2.29.2'],
      },
      // bootstrap 2019: npm [3.0.0, 3.4.1) and [4.0.0, 4.3.1); the RubyGems entry (< 4.3.1 from 0)
      // must not make npm 2.x affected; 4.0.0-beta sorts between the two lines.
      {
        file: 'npm/GHSA-9v3m-8fp8-mj99.json',
        eco: 'npm',
        name: 'bootstrap',
        affected: ['3.0.0', '3.4.0', '4.0.0', '4.3.0'],
        notAffected: ['2.3.2', '3.4.1', '4.0.0-beta', '4.3.1', '5.0.0'],
        fixed: ['3.4.1', '4.3.1'],
      },
      {
        file: 'npm/GHSA-9v3m-8fp8-mj99.json',
        eco: 'npm',
        name: 'bootstrap-sass',
        affected: ['3.3.7'],
        notAffected: ['2.3.2', '3.4.1'],
        fixed: ['3.4.1'],
      },
      // bootstrap 2024: 4.0.0 to 4.6.2 inclusive, no fix.
      {
        file: 'npm/GHSA-vc8w-jr9v-vj7f.json',
        eco: 'npm',
        name: 'bootstrap',
        affected: ['4.0.0', '4.6.2', '4.6.1'],
        notAffected: ['3.4.1', '4.6.3', '5.0.0', '4.0.0-alpha.6'],
        fixed: [],
      },
    ]);
  });

  it('PyPI: PEP 440 order, PEP 503 names, last_affected and listed spellings', () => {
    check([
      // pandas: fixed 1.0.4 (the text says "through 1.0.3"): 1.0.3's post-release and 1.0.4's release
      // candidate sort below the fix; 0.2b0 is the list's "0.2beta".
      {
        file: 'PyPI/PYSEC-2020-73.json',
        eco: 'pypi',
        name: 'pandas',
        affected: ['0.2b0', '0.3.0b0', '1.0.3', '1.0.3.post1', '1.0.4rc0'],
        notAffected: ['1.0.4', '1.1.0'],
        fixed: ['1.0.4'],
      },
      // ecdsa <= 0.18.0, no fix: a post-release of it is past the last affected one.
      {
        file: 'PyPI/GHSA-wj6h-64fc-37mp.json',
        eco: 'pypi',
        name: 'ecdsa',
        affected: ['0.18.0', '0.18.0b1', '0.1'],
        notAffected: ['0.18.0.post1', '0.19.0'],
        fixed: [],
      },
      // py "through 1.11.0".
      {
        file: 'PyPI/GHSA-w596-4wvx-j9j6.json',
        eco: 'pypi',
        name: 'py',
        affected: ['1.11.0', '1.4.34'],
        notAffected: ['1.11.1'],
        fixed: [],
      },
      // python-jose "through 3.3.0"; python_jose is the same project under PEP 503.
      {
        file: 'PyPI/GHSA-6c5p-j8vq-pqhj.json',
        eco: 'pypi',
        name: 'python_jose',
        affected: ['3.3.0', '3.0.0'],
        notAffected: ['3.4.0'],
        fixed: [],
      },
      // flask-cors <= 4.0.0, a second advisory of the package (beside PYSEC-2020-43).
      {
        file: 'PyPI/GHSA-84pr-m4jr-85g5.json',
        eco: 'pypi',
        name: 'Flask-Cors',
        affected: ['4.0.0', '3.0.10'],
        notAffected: ['4.0.1', '5.0.0'],
        fixed: [],
      },
      // jinja2 < 3.1.3, asked for as Jinja2.
      {
        file: 'PyPI/GHSA-h5c8-rqwp-cp95.json',
        eco: 'pypi',
        name: 'Jinja2',
        affected: ['3.1.2', '2.11.3'],
        notAffected: ['3.1.3', '3.1.4'],
        fixed: ['3.1.3'],
      },
      // Werkzeug < 3.0.3, asked for in lower case.
      {
        file: 'PyPI/GHSA-2g68-c3qc-8985.json',
        eco: 'pypi',
        name: 'werkzeug',
        affected: ['3.0.2', '2.3.8'],
        notAffected: ['3.0.3', '3.1.0'],
        fixed: ['3.0.3'],
      },
      // Pillow "through 10.1.0", fixed 10.2.0; PIL is another project, not a spelling of Pillow.
      {
        file: 'PyPI/GHSA-3f63-hfp8-52jq.json',
        eco: 'pypi',
        name: 'pillow',
        affected: ['10.1.0', '9.5.0'],
        notAffected: ['10.2.0'],
        fixed: ['10.2.0'],
      },
      {
        file: 'PyPI/GHSA-3f63-hfp8-52jq.json',
        eco: 'pypi',
        name: 'PIL',
        affected: [],
        notAffected: ['1.1.7'],
        fixed: [],
      },
    ]);
  });

  it("NuGet: NuGet's order (pre-release lines, four-part versions), several ranges and packages", () => {
    check([
      // Microsoft.Data.SqlClient: < 2.1.7, [3.0.0, 3.1.5), [4.0.0, 4.0.5), [5.0.0, 5.1.3); 4.1.x is between them.
      {
        file: 'NuGet-more/GHSA-98g6-xh36-x2p7.json',
        eco: 'nuget',
        name: 'microsoft.data.sqlclient',
        affected: ['2.1.6', '3.0.0', '3.1.4', '4.0.4', '5.0.0', '5.1.2'],
        notAffected: ['2.1.7', '3.1.5', '4.0.5', '4.1.0', '5.1.3', '5.2.0'],
        fixed: ['2.1.7', '3.1.5', '4.0.5', '5.1.3'],
      },
      {
        file: 'NuGet-more/GHSA-98g6-xh36-x2p7.json',
        eco: 'nuget',
        name: 'System.Data.SqlClient',
        affected: ['4.8.5'],
        notAffected: ['4.8.6'],
        fixed: ['4.8.6'],
      },
      // System.IdentityModel.Tokens.Jwt: < 5.7.0, [6.5.0, 6.34.0), [7.0.0-preview, 7.1.2).
      {
        file: 'NuGet-more/GHSA-59j7-ghrg-fj52.json',
        eco: 'nuget',
        name: 'system.identitymodel.tokens.jwt',
        affected: ['5.6.0', '6.5.0', '6.33.0', '7.0.0-preview', '7.0.0-preview5', '7.0.0-PREVIEW5', '7.1.1'],
        notAffected: ['5.7.0', '6.4.0', '6.34.0', '7.0.0-alpha', '7.1.2'],
        fixed: ['5.7.0', '6.34.0', '7.1.2'],
      },
      // System.Text.Json [8.0.0, 8.0.5) and [6.0.0, 6.0.10): 7.x and 8.0's release candidates are clear.
      {
        file: 'NuGet-more/GHSA-8g4q-xg66-9fp4.json',
        eco: 'nuget',
        name: 'System.Text.Json',
        affected: ['8.0.0', '8.0.4', '6.0.0', '6.0.9'],
        notAffected: ['8.0.5', '6.0.10', '7.0.4', '8.0.0-rc.2.23479.6', '9.0.0'],
        fixed: ['6.0.10', '8.0.5'],
      },
      // HtmlSanitizer < 8.0.723 and [8.1.0-beta, 8.1.722-beta): the fix of the preview line is a beta.
      {
        file: 'NuGet-more/GHSA-43cp-6p3q-2pc4.json',
        eco: 'nuget',
        name: 'HtmlSanitizer',
        affected: ['8.0.722', '8.1.0-beta', '8.1.645-beta'],
        notAffected: ['8.0.723', '8.1.722-beta', '8.1.722-BETA', '8.1.722'],
        fixed: ['8.0.723', '8.1.722-beta'],
      },
      // Npgsql: six lines listed out of order; 8.0.3.0 is 8.0.3.
      {
        file: 'NuGet-more/GHSA-x9vc-6hfv-hg8c.json',
        eco: 'nuget',
        name: 'Npgsql',
        affected: ['4.0.13', '4.1.0', '4.1.12', '5.0.17', '6.0.10', '7.0.6', '8.0.0', '8.0.2'],
        notAffected: ['4.0.14', '4.1.13', '5.0.18', '6.0.11', '7.0.7', '8.0.3', '8.0.3.0', '9.0.0'],
        fixed: ['4.0.14', '4.1.13', '5.0.18', '6.0.11', '7.0.7', '8.0.3'],
      },
      // ImageSharp: "< 3.1.3" and "< 2.1.7", both from 0. By the schema 2.1.7 is inside the first
      // range, so it is affected and not reported as a fix (the text's "or v2.1.7" notwithstanding).
      {
        file: 'NuGet-more/GHSA-65x7-c272-7g7r.json',
        eco: 'nuget',
        name: 'SixLabors.ImageSharp',
        affected: ['2.1.6', '2.1.7', '3.0.0', '3.1.2'],
        notAffected: ['3.1.3', '3.1.3.0', '4.0.0'],
        fixed: ['3.1.3'],
      },
      // NuGet entries of npm-directory records: bootstrap 2019 and 2024, Moment.js, Bootstrap.Less.
      {
        file: 'npm/GHSA-9v3m-8fp8-mj99.json',
        eco: 'nuget',
        name: 'bootstrap',
        affected: ['3.3.7', '4.3.0'],
        notAffected: ['2.3.2', '3.4.1', '4.3.1'],
        fixed: ['3.4.1', '4.3.1'],
      },
      {
        file: 'npm/GHSA-9v3m-8fp8-mj99.json',
        eco: 'nuget',
        name: 'bootstrap.sass',
        affected: ['2.0.0', '4.0.0'],
        notAffected: ['4.3.1'],
        fixed: ['4.3.1'],
      },
      {
        file: 'npm/GHSA-9v3m-8fp8-mj99.json',
        eco: 'nuget',
        name: 'Bootstrap.Less',
        affected: ['3.3.7'],
        notAffected: ['2.3.2', '3.4.1'],
        fixed: ['3.4.1'],
      },
      {
        file: 'npm/GHSA-vc8w-jr9v-vj7f.json',
        eco: 'nuget',
        name: 'bootstrap.sass',
        affected: ['4.6.2', '4.0.0'],
        notAffected: ['3.4.1', '5.0.0'],
        fixed: [],
      },
      {
        file: 'npm/GHSA-8hfj-j24r-96c4.json',
        eco: 'nuget',
        name: 'moment.js',
        affected: ['2.29.1'],
        notAffected: ['2.29.2', '2.29.2.0'],
        fixed: ['2.29.2'],
      },
    ]);
    // The withdrawn duplicate of GHSA-59j7-ghrg-fj52 is a valid record; the importer drops it.
    expect(load('NuGet-more/GHSA-8g9c-28fc-mcx2.json').withdrawn).toBe('2024-04-11T20:42:09Z');
  });

  it('severity: the CVSS v4 base score before v3, a CVSS 3.0 vector, an empty vector, no severity', () => {
    const cases: [string, string, number | null][] = [
      ['npm/GHSA-p8p7-x288-28g6.json', 'medium', 6.1],
      ['npm/GHSA-g644-9gfx-q4q4.json', 'critical', 9.8],
      ['npm/GHSA-3h5v-q93c-6h6q.json', 'high', 7.5],
      ['npm/GHSA-27h2-hvpr-p74q.json', 'high', 7.6],
      ['npm/GHSA-8hfj-j24r-96c4.json', 'high', 7.5],
      ['npm/GHSA-9v3m-8fp8-mj99.json', 'medium', 6.1],
      ['npm/GHSA-vc8w-jr9v-vj7f.json', 'medium', 6.4],
      ['PyPI/PYSEC-2020-73.json', 'unknown', null], // no severity and no label
      ['PyPI/GHSA-wj6h-64fc-37mp.json', 'high', 7.4],
      ['PyPI/GHSA-w596-4wvx-j9j6.json', 'medium', 5.3],
      // v4 9.3 beside v3 7.4: GitHub's label is HIGH (from v3); the v4 base score is critical.
      ['PyPI/GHSA-6c5p-j8vq-pqhj.json', 'critical', 9.3],
      ['PyPI/GHSA-84pr-m4jr-85g5.json', 'medium', 5.3], // a CVSS:3.0 vector
      ['PyPI/GHSA-h5c8-rqwp-cp95.json', 'medium', 5.4],
      ['PyPI/GHSA-2g68-c3qc-8985.json', 'high', 7.5],
      ['PyPI/GHSA-3f63-hfp8-52jq.json', 'high', 8.1],
      ['NuGet-more/GHSA-98g6-xh36-x2p7.json', 'high', 8.7],
      ['NuGet-more/GHSA-59j7-ghrg-fj52.json', 'medium', 6.8],
      ['NuGet-more/GHSA-8g4q-xg66-9fp4.json', 'high', 8.8], // v4 8.8 beside v3 7.5
      // CVSS_V3 with an empty score: nothing to compute, so GitHub's MODERATE label.
      ['NuGet-more/GHSA-43cp-6p3q-2pc4.json', 'medium', null],
      ['NuGet-more/GHSA-x9vc-6hfv-hg8c.json', 'high', 8.1],
      ['NuGet-more/GHSA-65x7-c272-7g7r.json', 'high', 7.1],
    ];
    const actual = cases.map(([file]) => {
      const s = severityOf(load(file));
      return [file, s.level, s.score];
    });
    expect(actual).toEqual(cases);
    expect(severityOf(load('NuGet-more/GHSA-8g4q-xg66-9fp4.json')).vector).toBe(
      'CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:L/VI:L/VA:H/SC:N/SI:N/SA:N',
    );
  });

  it('every fixture is a valid OSV record named by its id and listed in the README', () => {
    const readme = fs.readFileSync(path.join(FIXTURES, 'README.md'), 'utf8');
    const files = fs
      .readdirSync(FIXTURES, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .flatMap((d) => fs.readdirSync(path.join(FIXTURES, d.name)).map((f) => `${d.name}/${f}`));
    expect(files.length).toBeGreaterThanOrEqual(40);
    const problems = files.filter((f) => {
      const r = load(f);
      return `${r.id}.json` !== path.basename(f) || !readme.includes(`| ${f} |`);
    });
    expect(problems).toEqual([]);
  });
});
