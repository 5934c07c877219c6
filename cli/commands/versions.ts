import fs from 'node:fs';
import { AppError } from '#core/errors.ts';
import { STATUSES } from '#core/registry/lifecycle.ts';
import { BUMPS } from '#core/registry/semver-policy.ts';
import type { Package } from '#core/registry/server-json.ts';
import type { CreatedVersion, VersionDetail, VersionView } from '#core/registry/versions.ts';
import {
  api,
  orgOf,
  query,
  segment,
  shortTime,
  table,
  type Command,
  type CommandContext,
} from '../client.ts';

const versionsPath = (server: string) => `/servers/${segment(server)}/versions`;
const versionPath = (server: string, version: string) => `${versionsPath(server)}/${segment(version)}`;

/** `@org/server@version`, or `server@version` when the org is unknown. */
const fullName = (org: string | undefined, server: string, version: string) =>
  `${org ? `@${org}/` : ''}${server}@${version}`;

/** The server.json fields a version carries (everything else in the document is the server's). */
const CONFIG_KEYS = ['title', 'websiteUrl', 'repository', 'remotes', 'packages', 'icons', 'meta'] as const;

/** A file named by a flag; one that cannot be read is a usage error naming it. */
function readFlagFile(ctx: CommandContext, flag: string): string | undefined {
  const file = ctx.flags[flag];
  if (typeof file !== 'string') return undefined;
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EISDIR'
          ? 'it is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : (error as Error).message;
    return ctx.usage(`cannot read --${flag} ${file}: ${why}`);
  }
}

/**
 * The version configuration of an MCP registry server.json, checked locally (the same parser the
 * API's import route uses), so a bad file fails before anything is sent.
 */
async function readServerJson(file: string, text: string) {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new AppError(
      400,
      'invalid-server-json',
      'Invalid server.json',
      `${file} is not JSON: ${(error as Error).message}`,
    );
  }
  // Imported here: only `--config` needs the server.json schema.
  const { fromServerJson } = await import('#core/registry/server-json.ts');
  try {
    return fromServerJson(doc);
  } catch (error) {
    if (error instanceof AppError) {
      throw new AppError(error.status, error.code, error.title, `${file}: ${error.message}`, error.extra);
    }
    throw new AppError(
      400,
      'invalid-server-json',
      'Invalid server.json',
      `${file}: ${(error as Error).message}`,
    );
  }
}

function describePackage(pkg: Package): string {
  const env = (pkg.environmentVariables ?? []).map((v) => {
    const traits = [v.isRequired ? 'required' : '', v.isSecret ? 'secret' : ''].filter(Boolean);
    return `${v.name}${traits.length ? ` (${traits.join(', ')})` : ''}`;
  });
  return [
    `${pkg.registryType} ${pkg.identifier}@${pkg.version}`,
    pkg.transport.type,
    ...(env.length ? [`env ${env.join(', ')}`] : []),
  ].join(' · ');
}

const NOTES_HEAD = 8;

function describeVersion(v: VersionDetail, org: string | undefined): string {
  const lines = [`${fullName(org, v.server, v.version)} · ${v.status}`];
  const field = (label: string, value: string) => lines.push(`${`${label}:`.padEnd(12)}${value}`);
  field(
    'can go to',
    v.allowedTransitions.length ? v.allowedTransitions.join(', ') : 'nothing (retired is final)',
  );
  field(
    'created',
    `${shortTime(v.createdAt)} UTC by ${v.createdBy}${v.createdFrom ? ` from ${v.createdFrom}` : ''}`,
  );
  if (v.releasedAt) field('released', `${shortTime(v.releasedAt)} UTC`);
  if (v.breaking) {
    field('breaking', v.migrationGuide ? 'yes; see the migration guide (--json)' : 'yes; no migration guide');
  }
  if (v.semverViolation) field('semver', `${v.semverViolation} (acknowledged)`);
  if (v.deprecation) {
    field(
      'deprecated',
      `${shortTime(v.deprecation.date)} UTC: ${v.deprecation.message}${v.deprecation.replacement ? ` (replacement ${v.deprecation.replacement})` : ''}`,
    );
  }
  lines.push(
    `packages:${v.packages.length ? '' : '   -'}`,
    ...v.packages.map((p) => `  ${describePackage(p)}`),
  );
  lines.push(`remotes:${v.remotes.length ? '' : '    -'}`, ...v.remotes.map((r) => `  ${r.type} ${r.url}`));
  if (v.variables.length || v.secrets.length) {
    field(
      'variables',
      `${v.variables.map((x) => x.name).join(', ') || '-'} · secrets: ${v.secrets.map((x) => x.name).join(', ') || '-'}`,
    );
  }
  const notes = v.releaseNotes.trimEnd().split('\n');
  if (v.releaseNotes.trim()) {
    lines.push('notes:', ...notes.slice(0, NOTES_HEAD).map((l) => (l ? `  ${l}` : '')));
    if (notes.length > NOTES_HEAD) lines.push(`  … ${notes.length - NOTES_HEAD} more lines (--json for all)`);
  } else {
    field('notes', '-');
  }
  return lines.join('\n');
}

function flagsOf(v: VersionView): string {
  return [
    v.breaking ? 'breaking' : '',
    v.deprecation ? 'deprecated' : '',
    v.semverViolation ? 'semver-violation' : '',
    v.createdFrom ? `from ${v.createdFrom}` : '',
  ]
    .filter(Boolean)
    .join(', ');
}

function checkStatus(ctx: CommandContext, status: string | undefined): void {
  if (status !== undefined && !(STATUSES as readonly string[]).includes(status)) {
    ctx.usage(`status ${JSON.stringify(status)} is not one of ${STATUSES.join(', ')}`);
  }
}

interface ChangesAnswer {
  server: string;
  baseline: string;
  candidate: string;
  environment: string | null;
  window: { from: string; to: string };
  contractCompared: boolean;
  changes: {
    kind: string;
    name: string;
    before: string | null;
    after: string | null;
    scope: string;
    actor: string | null;
    at: string | null;
    detail?: string;
  }[];
  summary: string;
}

const CHANGE_FORMATS = ['table', 'json'] as const;

/** `1.3.0 → 1.4.0 in production` with a table of the changes (secrets never carry values in the API's answer). */
function describeChanges(c: ChangesAnswer): string {
  const head = `${c.baseline} → ${c.candidate}${c.environment ? ` in ${c.environment}` : ''} (configuration events ${shortTime(c.window.from)} – ${shortTime(c.window.to)} UTC${c.contractCompared ? '' : '; no tools/list of both versions, contract not compared'})`;
  if (c.changes.length === 0) return `${head}\nno changes`;
  const change = (r: ChangesAnswer['changes'][number]) =>
    r.before === null && r.after === null ? '' : `${r.before ?? '-'} → ${r.after ?? '-'}`;
  return [
    head,
    table(
      ['KIND', 'NAME', 'CHANGE', 'SCOPE', 'ACTOR', 'WHEN (UTC)', 'DETAIL'],
      c.changes.map((r) => [
        r.kind,
        r.name,
        change(r),
        r.scope,
        r.actor ?? '-',
        shortTime(r.at),
        r.detail ?? '',
      ]),
    ),
    c.summary,
  ].join('\n');
}

export const versionCommands: Command[] = [
  {
    name: 'versions changes',
    args: ['<server>'],
    summary:
      'what changed from baseline to candidate: packages, remotes, variables, secrets, contract, config events',
    flags: {
      candidate: { type: 'string', value: 'V', required: true, description: 'the newer version' },
      baseline: {
        type: 'string',
        value: 'V',
        description: 'the version to compare with (default: the stable one serving the environment)',
      },
      environment: { type: 'string', value: 'E', description: 'resolve variables and secrets for E' },
      window: { type: 'string', value: 'D', description: 'configuration events over D (default 7d)' },
      format: { type: 'string', value: 'table|json', description: 'output (default table)' },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const flags = ctx.flags as {
        candidate: string;
        baseline?: string;
        environment?: string;
        window?: string;
        format?: string;
      };
      const format = ctx.json ? 'json' : (flags.format ?? 'table');
      if (!(CHANGE_FORMATS as readonly string[]).includes(format))
        ctx.usage(`--format ${format}: use ${CHANGE_FORMATS.join(' or ')}`);
      const answer = await api<ChangesAnswer>(
        ctx.client,
        'GET',
        `/servers/${segment(server)}/changes${query({
          candidate: flags.candidate,
          baseline: flags.baseline,
          environment: flags.environment,
          window: flags.window,
        })}`,
      );
      ctx.print(answer, format === 'json' ? JSON.stringify(answer, null, 2) : describeChanges(answer));
    },
  },
  {
    name: 'versions create',
    args: ['<server>', '[version]'],
    summary:
      'register a version (configuration from an MCP registry server.json); without a number, --branch or --bump picks it',
    flags: {
      'notes-file': {
        type: 'string',
        value: 'F',
        description: 'release notes (Markdown) from a file, e.g. CHANGELOG.md',
      },
      config: {
        type: 'string',
        value: 'server.json',
        description: 'packages, remotes and the rest from an MCP registry server.json',
      },
      status: {
        type: 'string',
        value: 'S',
        description: `first status (${STATUSES.slice(0, 3).join(', ')})`,
      },
      breaking: { type: 'boolean', description: 'the version breaks clients; needs a MAJOR bump' },
      'migration-guide-file': {
        type: 'string',
        value: 'F',
        description: 'migration guide (Markdown) from a file',
      },
      from: { type: 'string', value: 'V', description: 'start from the configuration of version V' },
      template: {
        type: 'string',
        value: '@ORG/T@V',
        description: 'start from a template version (@acme/http-service@1.2.0); records it on the server',
      },
      'acknowledge-semver-violation': {
        type: 'boolean',
        description: 'allow --breaking without the MAJOR bump (needs --reason)',
      },
      reason: { type: 'string', value: 'R', description: 'why; kept in the audit trail' },
      line: {
        type: 'string',
        value: 'L',
        description:
          'a declared maintenance line (1.4.x) the version must be in; with --bump, the next in it',
      },
      bump: {
        type: 'string',
        value: 'B',
        description: 'no number given: the next patch / minor / major (in --line, if given)',
      },
      branch: {
        type: 'string',
        value: 'NAME',
        description: 'no number given: the next development version X.Y.Z-<branch>.N of this branch',
      },
    },
    async run(ctx) {
      const [server, given] = ctx.positionals as [string, string | undefined];
      const flags = ctx.flags as {
        line?: string;
        bump?: string;
        branch?: string;
        config?: string;
        status?: string;
        breaking?: boolean;
        from?: string;
        template?: string;
        'acknowledge-semver-violation'?: boolean;
        reason?: string;
      };
      checkStatus(ctx, flags.status);
      if (flags.status === 'deprecated' || flags.status === 'retired') {
        ctx.usage(`a new version starts as development, release-candidate or stable, not ${flags.status}`);
      }
      if (flags['acknowledge-semver-violation'] && !flags.reason) {
        ctx.usage('--acknowledge-semver-violation needs --reason saying why the MAJOR bump is skipped');
      }
      if ([given, flags.bump, flags.branch].filter((x) => x !== undefined).length !== 1) {
        ctx.usage('give a version number, or --bump patch|minor|major, or --branch NAME (one of them)');
      }
      const version =
        given ??
        (flags.bump === undefined
          ? undefined
          : (
              await api<{ next: string }>(
                ctx.client,
                'GET',
                `${versionsPath(server)}/next${query({ bump: flags.bump, line: flags.line })}`,
              )
            ).next);
      const releaseNotes = readFlagFile(ctx, 'notes-file');
      const migrationGuide = readFlagFile(ctx, 'migration-guide-file');
      const configText = readFlagFile(ctx, 'config');

      const config: Record<string, unknown> = {};
      if (flags.config !== undefined && configText !== undefined) {
        const doc = await readServerJson(flags.config, configText);
        if (version !== undefined && doc.version !== version) {
          ctx.warn(
            `${flags.config} says version ${doc.version}; creating ${version} as the command line says`,
          );
        }
        for (const key of CONFIG_KEYS) if (doc.config[key] !== undefined) config[key] = doc.config[key];
      }

      const [created, org] = await Promise.all([
        api<CreatedVersion>(ctx.client, 'POST', versionsPath(server), {
          version,
          ...(flags.branch ? { prerelease: { branch: flags.branch } } : {}),
          line: flags.line,
          status: flags.status,
          releaseNotes,
          breaking: flags.breaking,
          migrationGuide,
          from: flags.from,
          template: flags.template,
          acknowledgeSemverViolation: flags['acknowledge-semver-violation'],
          reason: flags.reason,
          ...config,
        }).catch((error: unknown) => {
          // The API's hint names its body fields; a pipeline needs the flags.
          if (error instanceof AppError && error.code === 'breaking-without-major') {
            throw new AppError(
              error.status,
              error.code,
              error.title,
              error.message.replace(
                'send acknowledgeSemverViolation: true with a reason',
                'pass --acknowledge-semver-violation --reason R',
              ),
            );
          }
          throw error;
        }),
        orgOf(ctx.client),
      ]);
      // Warnings go to stderr: the version exists, but a pipeline log should say what to fix.
      for (const warning of created.warnings) ctx.warn(warning.message);
      ctx.print(
        created,
        `created ${fullName(org, created.server, created.version)} (${created.status})${created.template ? ` from template ${created.template}` : ''}${created.semverViolation ? `\nsemver violation acknowledged: ${created.semverViolation}` : ''}`,
      );
    },
  },
  {
    name: 'versions list',
    args: ['<server>'],
    summary: 'list versions, highest first',
    flags: {
      status: { type: 'string', value: 'S', description: `only this status (${STATUSES.join(', ')})` },
      prerelease: { type: 'boolean', description: 'only pre-releases' },
      'stable-only': { type: 'boolean', description: 'no pre-releases' },
      range: { type: 'string', value: 'R', description: 'only versions in a semver range, e.g. ^1.2' },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const flags = ctx.flags as {
        status?: string;
        prerelease?: boolean;
        'stable-only'?: boolean;
        range?: string;
      };
      checkStatus(ctx, flags.status);
      if (flags.prerelease && flags['stable-only'])
        ctx.usage('--prerelease and --stable-only exclude each other');
      const { versions } = await api<{ versions: VersionView[] }>(
        ctx.client,
        'GET',
        `${versionsPath(server)}${query({
          status: flags.status,
          prerelease: flags.prerelease ? true : flags['stable-only'] ? false : undefined,
          range: flags.range,
        })}`,
      );
      ctx.print(
        versions,
        versions.length
          ? table(
              ['VERSION', 'STATUS', 'CREATED (UTC)', 'FLAGS'],
              versions.map((v) => [v.version, v.status, shortTime(v.createdAt), flagsOf(v)]),
            )
          : `no versions of ${server}${flags.status || flags.prerelease || flags['stable-only'] || flags.range ? ' match' : ' yet'}`,
      );
    },
  },
  {
    name: 'versions show',
    args: ['<server>', '<version>'],
    summary: 'show a version: status, allowed transitions, packages, remotes, deprecation, notes',
    async run(ctx) {
      const [server, version] = ctx.positionals as [string, string];
      const [detail, org] = await Promise.all([
        api<VersionDetail>(ctx.client, 'GET', versionPath(server, version)),
        orgOf(ctx.client),
      ]);
      ctx.print(detail, describeVersion(detail, org));
    },
  },
  {
    name: 'versions deprecate',
    args: ['<server>', '<version>'],
    summary: 'deprecate a version, telling users what to do instead',
    flags: {
      message: {
        type: 'string',
        value: 'M',
        required: true,
        description: 'what users should do, e.g. "upgrade to 2.0.0"',
      },
      replacement: { type: 'string', value: 'V', description: 'the newer version to use instead' },
      date: {
        type: 'string',
        value: 'T',
        description: 'when it is deprecated from, RFC 3339 (default: now)',
      },
      reason: { type: 'string', value: 'R', description: 'why; kept in the audit trail' },
    },
    async run(ctx) {
      const [server, version] = ctx.positionals as [string, string];
      const flags = ctx.flags as { message: string; replacement?: string; date?: string; reason?: string };
      const [updated, org] = await Promise.all([
        api<VersionDetail>(ctx.client, 'PATCH', versionPath(server, version), {
          status: 'deprecated',
          reason: flags.reason,
          deprecation: { message: flags.message, replacement: flags.replacement, date: flags.date },
        }),
        orgOf(ctx.client),
      ]);
      const replacement = updated.deprecation?.replacement;
      ctx.print(
        updated,
        `deprecated ${fullName(org, updated.server, updated.version)}: ${updated.deprecation?.message ?? flags.message}${replacement ? ` (replacement ${replacement})` : ''}`,
      );
    },
  },
  {
    name: 'versions status',
    args: ['<server>', '<version>', '<status>'],
    summary: `move a version through its lifecycle (${STATUSES.join(' → ')})`,
    flags: { reason: { type: 'string', value: 'R', description: 'why; kept in the audit trail' } },
    async run(ctx) {
      const [server, version, status] = ctx.positionals as [string, string, string];
      checkStatus(ctx, status);
      if (status === 'deprecated') {
        ctx.usage(
          `deprecating needs a message for users: pylee versions deprecate ${server} ${version} --message M`,
        );
      }
      const [updated, org] = await Promise.all([
        api<VersionDetail>(ctx.client, 'PATCH', versionPath(server, version), {
          status,
          reason: ctx.flags.reason,
        }),
        orgOf(ctx.client),
      ]);
      ctx.print(
        updated,
        `${fullName(org, updated.server, updated.version)} is ${updated.status}; it can go to ${updated.allowedTransitions.join(', ') || 'nothing (retired is final)'}`,
      );
    },
  },
  {
    name: 'versions next',
    args: ['<server>'],
    summary: 'print the next version number (VERSION=$(pylee versions next weather --bump minor))',
    flags: {
      bump: {
        type: 'string',
        value: 'patch|minor|major|prerelease',
        required: true,
        description: `which part to raise (${BUMPS.join(', ')})`,
      },
      preid: {
        type: 'string',
        value: 'ID',
        description: 'pre-release identifier for pre* bumps (default rc)',
      },
      line: {
        type: 'string',
        value: 'L',
        description: 'the next inside a maintenance line (1.4.x): a hotfix',
      },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const flags = ctx.flags as { bump: string; preid?: string; line?: string };
      if (!(BUMPS as readonly string[]).includes(flags.bump)) {
        ctx.usage(`--bump ${flags.bump} is not one of ${BUMPS.join(', ')}`);
      }
      const next = await api<{ current: string | null; next: string; bump: string }>(
        ctx.client,
        'GET',
        `${versionsPath(server)}/next${query({ bump: flags.bump, preid: flags.preid, line: flags.line })}`,
      );
      ctx.print(next, next.next);
    },
  },
];
