import fs from 'node:fs';
import path from 'node:path';
import { zipSync } from 'fflate';
import { AppError } from '#core/errors.ts';
import type { AdvisoryStatus, ImportSummary } from '#core/vulns/advisories.ts';
import { parseDuration } from '#core/alerting/durations.ts';
import type { Finding, VersionVulnerabilities, VulnerableVersion } from '#core/vulns/findings.ts';
import type { IgnoreRule } from '#core/vulns/ignores.ts';
import { SEVERITIES } from '#core/vulns/severity.ts';
import { api, query, segment, shortTime, table, type Command, type CommandContext } from '../client.ts';

/** `versions scan` exit codes, as CI reads them. */
export const SCAN_EXIT = { clean: 0, vulnerable: 1, usage: 2, error: 3 } as const;

const FORMATS = ['table', 'json', 'markdown', 'sarif'] as const;
type Format = (typeof FORMATS)[number];

/** Every `.json` and `.zip` under `dir`, zipped with their relative paths (the API opens inner zips). */
function zipDirectory(dir: string): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  const walk = (at: string) => {
    for (const entry of fs.readdirSync(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.(json|zip)$/i.test(entry.name))
        files[path.relative(dir, full).split(path.sep).join('/')] = fs.readFileSync(full);
    }
  };
  walk(dir);
  return zipSync(files);
}

function readExport(ctx: CommandContext, source: string): Uint8Array {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(source);
  } catch {
    return ctx.usage(`cannot read ${source}: no such file or directory`);
  }
  return stat.isDirectory() ? zipDirectory(source) : fs.readFileSync(source);
}

const describeCounts = (c: Record<string, number>) =>
  `npm ${c.npm ?? 0}, PyPI ${c.pypi ?? 0}, NuGet ${c.nuget ?? 0}`;

function describeImport(
  source: string,
  r: ImportSummary & {
    changed: number;
    rescanned: number;
    newlyAffected: number;
    announced: number;
    durationMs: number;
  },
) {
  return [
    `imported ${source}: ${r.records} records, ${r.imported} stored, ${r.unchanged} unchanged, ${r.withdrawn} withdrawn, ${r.skipped} without a supported ecosystem (${Math.round(r.durationMs)} ms)`,
    `advisories now: ${describeCounts(r.perEcosystem)}`,
    `re-scanned ${r.rescanned} versions; ${r.newlyAffected} newly affected, ${r.announced} of them running (version.vulnerable sent)`,
  ].join('\n');
}

function describeStatus(s: AdvisoryStatus): string {
  const last = s.lastImport
    ? `last import ${shortTime(s.lastImport.at)} from ${s.lastImport.source} by ${s.lastImport.importedBy} (${s.lastImport.stats.records} records, ${s.lastImport.stats.imported} stored)`
    : 'no import yet: run pylee advisories import <all.zip|dir>';
  return `${s.advisories} advisories: ${describeCounts(s.perEcosystem)}\n${last}`;
}

const describeSeverities = (counts: Record<string, number>) =>
  Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([level, n]) => `${n} ${level}`)
    .join(', ');

const fixedOf = (f: Finding) => (f.fixed.length ? f.fixed.join(', ') : 'no fix');

function asTable(r: VersionVulnerabilities): string {
  const lines = [
    r.findings.length === 0
      ? `${r.server}@${r.version}: no findings`
      : table(
          ['PACKAGE', 'VERSION', 'ADVISORY', 'SEVERITY', 'FIXED IN', 'SUMMARY'],
          r.findings.map((f) => [
            `${f.package.registryType}:${f.package.identifier}`,
            f.package.version,
            f.advisory.id,
            `${f.advisory.severity}${f.advisory.score === null ? '' : ` ${f.advisory.score}`}`,
            fixedOf(f),
            f.advisory.summary.slice(0, 80),
          ]),
        ),
  ];
  for (const c of r.coverage.filter((c) => c.status !== 'scanned')) {
    lines.push(`${c.status}: ${c.registryType}:${c.identifier}@${c.version} (${c.reason ?? ''})`);
  }
  if (r.ignored.length) lines.push(`${r.ignored.length} finding(s) hidden by ignore rules`);
  return lines.join('\n');
}

function asMarkdown(r: VersionVulnerabilities): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const rows = r.findings.map(
    (f) =>
      `| ${esc(`${f.package.registryType}:${f.package.identifier}`)} | ${f.package.version} | [${f.advisory.id}](${f.advisory.link}) | ${f.advisory.severity} | ${esc(fixedOf(f))} | ${esc(f.advisory.summary)} |`,
  );
  const notes = r.coverage
    .filter((c) => c.status !== 'scanned')
    .map((c) => `- **${c.status}**: ${c.registryType}:${c.identifier}@${c.version}: ${c.reason ?? ''}`);
  return [
    `### Vulnerabilities of ${r.server}@${r.version}`,
    '',
    r.findings.length === 0
      ? 'No findings.'
      : [
          '| Package | Version | Advisory | Severity | Fixed in | Summary |',
          '| --- | --- | --- | --- | --- | --- |',
          ...rows,
        ].join('\n'),
    ...(notes.length ? ['', ...notes] : []),
  ].join('\n');
}

/** SARIF 2.1.0, one rule per advisory, one result per finding (code scanning tools read it). */
export function asSarif(r: VersionVulnerabilities): unknown {
  const level = (s: string) =>
    s === 'critical' || s === 'high' ? 'error' : s === 'medium' ? 'warning' : 'note';
  const rules = new Map<string, unknown>();
  for (const f of r.findings) {
    rules.set(f.advisory.id, {
      id: f.advisory.id,
      shortDescription: { text: f.advisory.summary || f.advisory.id },
      helpUri: f.advisory.link,
      properties: {
        aliases: f.advisory.aliases,
        severity: f.advisory.severity,
        ...(f.advisory.score === null ? {} : { 'security-severity': String(f.advisory.score) }),
      },
    });
  }
  return {
    $schema: 'https://json.schemastore.org/sarif-2.1.0.json',
    version: '2.1.0',
    runs: [
      {
        tool: { driver: { name: 'pylee', informationUri: 'https://osv.dev', rules: [...rules.values()] } },
        results: r.findings.map((f) => ({
          ruleId: f.advisory.id,
          level: level(f.advisory.severity),
          message: {
            text: `${f.package.identifier}@${f.package.version} (${f.package.registryType}) is affected by ${f.advisory.id}: ${f.advisory.summary}; fixed in ${fixedOf(f)}`,
          },
          locations: [
            {
              logicalLocations: [
                {
                  name: `${f.package.registryType}:${f.package.identifier}@${f.package.version}`,
                  kind: 'package',
                },
              ],
            },
          ],
        })),
      },
    ],
  };
}

function render(format: Format, r: VersionVulnerabilities): string {
  if (format === 'json') return JSON.stringify(r, null, 2);
  if (format === 'sarif') return JSON.stringify(asSarif(r), null, 2);
  if (format === 'markdown') return asMarkdown(r);
  return asTable(r);
}

export const vulnerabilityCommands: Command[] = [
  {
    name: 'advisories import',
    args: ['<zip|dir>'],
    summary:
      'import an OSV export (an ecosystem all.zip, or a directory of them / of records), all or nothing (admin)',
    flags: {
      ecosystem: { type: 'string', value: 'E', description: 'only this ecosystem: npm, PyPI, NuGet' },
    },
    async run(ctx) {
      const source = ctx.positionals[0] as string;
      const data = readExport(ctx, source);
      const result = await api<Parameters<typeof describeImport>[1]>(
        ctx.client,
        'POST',
        `/advisories/import${query({ source: path.basename(source), ecosystem: ctx.flags.ecosystem as string | undefined })}`,
        data,
      );
      ctx.print(result, describeImport(source, result));
    },
  },
  {
    name: 'advisories status',
    summary: 'advisories stored per ecosystem and the last import',
    async run(ctx) {
      const status = await api<AdvisoryStatus>(ctx.client, 'GET', '/advisories/status');
      ctx.print(status, describeStatus(status));
    },
  },
  {
    name: 'versions scan',
    args: ['<server>', '<version>'],
    summary:
      'scan a version against the advisories; exit 0 clean, 1 vulnerable (at or above --severity, after ignore rules), 2 usage error, 3 API or database error',
    flags: {
      severity: {
        type: 'string',
        value: 'S',
        description: `fail only at or above: ${SEVERITIES.join(', ')} (default: any finding)`,
      },
      format: {
        type: 'string',
        value: 'F',
        description: `${FORMATS.join(' | ')} (default table; --json = json)`,
      },
    },
    async run(ctx) {
      const [server, version] = ctx.positionals as [string, string];
      const severity = ctx.flags.severity as string | undefined;
      if (severity !== undefined && !(SEVERITIES as readonly string[]).includes(severity)) {
        ctx.usage(`--severity ${severity} is not a level; use one of ${SEVERITIES.join(', ')}`);
      }
      const format = ((ctx.flags.format as string | undefined) ?? (ctx.json ? 'json' : 'table')) as Format;
      if (!FORMATS.includes(format)) ctx.usage(`--format ${format} is not one of ${FORMATS.join(', ')}`);
      const at = `/servers/${segment(server)}/versions/${segment(version)}/vulnerabilities`;
      let report: VersionVulnerabilities;
      try {
        report = await api<VersionVulnerabilities>(
          ctx.client,
          'POST',
          `${at}/scan${query({ severity })}`,
        ).catch((error: unknown) => {
          // A read-only CI token cannot rescan: read the findings kept current on every import.
          if (!(error instanceof AppError && error.code === 'missing-permission')) throw error;
          return api<VersionVulnerabilities>(ctx.client, 'GET', `${at}${query({ severity })}`);
        });
      } catch (error) {
        if (!(error instanceof AppError)) throw error;
        ctx.warn(`${error.message} (${error.code})`);
        return SCAN_EXIT.error;
      }
      process.stdout.write(`${render(format, report)}\n`);
      return report.findings.length > 0 ? SCAN_EXIT.vulnerable : SCAN_EXIT.clean;
    },
  },
  {
    name: 'vulnerabilities list',
    summary: 'vulnerable versions of the org and the environments they run in now',
    flags: {
      severity: { type: 'string', value: 'S', description: `at or above: ${SEVERITIES.join(', ')}` },
      deployed: { type: 'boolean', description: 'only versions that run somewhere now' },
    },
    async run(ctx) {
      const { versions } = await api<{ versions: VulnerableVersion[] }>(
        ctx.client,
        'GET',
        `/vulnerabilities${query({ severity: ctx.flags.severity as string | undefined, deployed: ctx.flags.deployed as boolean | undefined })}`,
      );
      ctx.print(
        versions,
        versions.length === 0
          ? 'no vulnerable versions'
          : table(
              ['SERVER', 'VERSION', 'STATUS', 'RUNNING IN', 'FINDINGS', 'ADVISORIES'],
              versions.map((v) => [
                v.server,
                v.version,
                v.status,
                v.runningIn.map((r) => `${r.environment} ${r.weight}%`).join(', ') || '-',
                describeSeverities(v.counts),
                [...new Set(v.findings.map((f) => f.advisory.id))].join(', '),
              ]),
            ),
      );
    },
  },
  {
    name: 'vulnerabilities ignores',
    summary: 'list the ignore rules (expired ones say so)',
    async run(ctx) {
      const { rules } = await api<{ rules: IgnoreRule[] }>(ctx.client, 'GET', '/vulnerability-ignores');
      ctx.print(
        rules,
        rules.length === 0
          ? 'no ignore rules'
          : table(
              ['ID', 'ADVISORY', 'PACKAGE', 'SERVER', 'EXPIRES', 'BY', 'REASON'],
              rules.map((r) => [
                r.id,
                r.advisory,
                r.package ?? 'any',
                r.server ?? 'any',
                r.expiresAt ? `${shortTime(r.expiresAt)}${r.active ? '' : ' (expired)'}` : 'never',
                r.createdBy,
                r.reason,
              ]),
            ),
      );
    },
  },
  {
    name: 'vulnerabilities ignore',
    args: ['<advisory>'],
    summary: 'hide an advisory (id or alias) from findings and gates, with a reason; audited',
    flags: {
      reason: { type: 'string', value: 'TEXT', required: true, description: 'why it does not apply' },
      package: { type: 'string', value: 'NAME', description: 'only for this package' },
      server: { type: 'string', value: 'SLUG', description: 'only for this server' },
      for: { type: 'string', value: 'D', description: 'expire after: 30d, 12h (or give --expires-at)' },
      'expires-at': { type: 'string', value: 'T', description: 'expiry, RFC 3339' },
    },
    async run(ctx) {
      const flags = ctx.flags as Record<string, string | undefined>;
      let expiresAt = flags['expires-at'] ?? null;
      if (flags.for !== undefined) {
        const ms = parseDuration(flags.for);
        if (!ms) return ctx.usage(`--for ${flags.for} is not a duration like 30d or 12h`);
        expiresAt = new Date(Date.now() + ms).toISOString();
      }
      const rule = await api<IgnoreRule>(ctx.client, 'POST', '/vulnerability-ignores', {
        advisory: ctx.positionals[0],
        package: flags.package ?? null,
        server: flags.server ?? null,
        reason: flags.reason,
        expiresAt,
      });
      ctx.print(
        rule,
        `ignore rule ${rule.id}: ${rule.advisory} for ${rule.package ?? 'any package'} on ${rule.server ?? 'any server'}, ${rule.expiresAt ? `until ${rule.expiresAt}` : 'no expiry'}`,
      );
    },
  },
  {
    name: 'vulnerabilities unignore',
    args: ['<rule-id>'],
    summary: 'delete an ignore rule (its findings show again); audited',
    async run(ctx) {
      const rule = await api<IgnoreRule>(
        ctx.client,
        'DELETE',
        `/vulnerability-ignores/${segment(ctx.positionals[0] as string)}`,
      );
      ctx.print(rule, `deleted ignore rule ${rule.id} (${rule.advisory})`);
    },
  },
];
