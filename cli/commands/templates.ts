import fs from 'node:fs';
import { STATUSES } from '#core/registry/lifecycle.ts';
import type { TemplateUsage } from '#core/registry/template-usage.ts';
import type { TemplateDetail, TemplateVersionView, TemplateView } from '#core/registry/templates.ts';
import { api, segment, shortTime, table, type Command, type CommandContext } from '../client.ts';

const templatePath = (template: string, rest = '') => `/templates/${segment(template)}${rest}`;

/** `@org/slug` and `slug` both name a template of the token's org. */
const slugOf = (template: string) => template.replace(/^@[^/]+\//, '');

/** The server.json fields a template fixes (`_meta` as `meta`); the rest of the document is the server's. */
const CONFIG_KEYS = ['title', 'websiteUrl', 'repository', 'remotes', 'packages', 'icons', 'meta'] as const;

function readConfig(ctx: CommandContext, file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return ctx.usage(
      `cannot read --config ${file}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`,
    );
  }
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch (error) {
    return ctx.usage(`--config ${file} is not JSON: ${(error as Error).message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    return ctx.usage(`--config ${file} must hold a server.json object`);
  }
  const source: Record<string, unknown> = { ...doc, meta: doc.meta ?? doc._meta };
  return Object.fromEntries(CONFIG_KEYS.filter((k) => source[k] !== undefined).map((k) => [k, source[k]]));
}

/** `NAME=DEFAULT` → `{ name, default }`; the default may be empty and may hold `=`. */
function parseVariable(ctx: CommandContext, text: string) {
  const at = text.indexOf('=');
  if (at <= 0) return ctx.usage(`--variable ${text} must be NAME=DEFAULT (e.g. LOG_LEVEL=info)`);
  return { name: text.slice(0, at), default: text.slice(at + 1) };
}

function describeVersion(v: TemplateVersionView): string {
  const config = v.config as { remotes?: { url: string }[]; packages?: { identifier: string }[] };
  return [
    `${v.ref} · ${v.status}${v.deprecation ? ` · ${v.deprecation.message}` : ''}`,
    `  remotes:   ${config.remotes?.map((r) => r.url).join(', ') || '-'}`,
    `  packages:  ${config.packages?.map((p) => p.identifier).join(', ') || '-'}`,
    `  variables: ${v.variables.map((x) => `${x.name}=${x.default}`).join(', ') || '-'}`,
    `  secrets:   ${v.secrets.map((x) => x.name).join(', ') || '-'}`,
    `  servers:   ${v.servers}`,
  ].join('\n');
}

async function setStatus(ctx: CommandContext, status: string, message?: string) {
  const [template, version] = ctx.positionals as [string, string];
  const updated = await api<TemplateVersionView>(
    ctx.client,
    'PATCH',
    templatePath(slugOf(template), `/versions/${segment(version)}`),
    {
      status,
      reason: ctx.flags.reason as string | undefined,
      ...(message !== undefined ? { deprecation: { message } } : {}),
    },
  );
  ctx.print(updated, `${updated.ref} is ${updated.status}`);
}

export const templateCommands: Command[] = [
  {
    name: 'templates list',
    summary: 'templates with their latest stable version and how many servers are behind it',
    async run(ctx) {
      const { templates } = await api<{ templates: TemplateView[] }>(ctx.client, 'GET', '/templates');
      ctx.print(
        templates,
        templates.length === 0
          ? 'no templates (create one with pylee templates create <slug>)'
          : table(
              ['TEMPLATE', 'LATEST', 'VERSIONS', 'SERVERS', 'BEHIND'],
              templates.map((t) => [
                t.fullName,
                t.latest ?? '-',
                String(t.versionCount),
                String(t.servers),
                String(t.behind),
              ]),
            ),
      );
    },
  },
  {
    name: 'templates show',
    args: ['<template>'],
    summary: 'a template and its versions, highest first',
    async run(ctx) {
      const [template] = ctx.positionals as [string];
      const t = await api<TemplateDetail>(ctx.client, 'GET', templatePath(slugOf(template)));
      ctx.print(
        t,
        [
          `${t.fullName} · ${t.name} · latest ${t.latest ?? '-'} · ${t.servers} servers, ${t.behind} behind`,
          ...(t.description ? [t.description] : []),
          `owners: ${t.owners.join(', ') || '-'} · created ${shortTime(t.createdAt)} UTC by ${t.createdBy}`,
          ...t.versions.map(describeVersion),
        ].join('\n'),
      );
    },
  },
  {
    name: 'templates create',
    args: ['<slug>'],
    summary: 'create a template',
    flags: {
      name: { type: 'string', value: 'N', description: 'display name (default: the slug)' },
      description: { type: 'string', value: 'D', description: 'what servers from it are' },
      owner: { type: 'string', multiple: true, value: 'O', description: 'an owning team; repeat for more' },
    },
    async run(ctx) {
      const [slug] = ctx.positionals as [string];
      const t = await api<TemplateDetail>(ctx.client, 'POST', '/templates', {
        slug,
        name: ctx.flags.name as string | undefined,
        description: ctx.flags.description as string | undefined,
        owners: ctx.flags.owner as string[] | undefined,
      });
      ctx.print(t, `created template ${t.fullName}`);
    },
  },
  {
    name: 'templates versions create',
    args: ['<template>', '<version>'],
    summary: 'add an immutable version to a template',
    flags: {
      config: {
        type: 'string',
        value: 'server.json',
        description: 'the remotes, packages, title… it fixes (other fields are ignored)',
      },
      variable: {
        type: 'string',
        multiple: true,
        value: 'NAME=DEFAULT',
        description: 'a variable set on servers created from it; repeat for more',
      },
      secret: {
        type: 'string',
        multiple: true,
        value: 'NAME',
        description: 'a secret servers from it must set; repeat for more',
      },
      status: {
        type: 'string',
        value: 'S',
        description: 'development, release-candidate or stable (default: development)',
      },
      'notes-file': { type: 'string', value: 'FILE', description: 'release notes (Markdown)' },
    },
    async run(ctx) {
      const [template, version] = ctx.positionals as [string, string];
      const flags = ctx.flags as {
        config?: string;
        variable?: string[];
        secret?: string[];
        status?: string;
        'notes-file'?: string;
      };
      if (
        flags.status !== undefined &&
        !['development', 'release-candidate', 'stable'].includes(flags.status)
      ) {
        ctx.usage(`--status ${flags.status}: a new version is development, release-candidate or stable`);
      }
      const config = flags.config ? readConfig(ctx, flags.config) : {};
      let releaseNotes: string | undefined;
      if (flags['notes-file']) {
        try {
          releaseNotes = fs.readFileSync(flags['notes-file'], 'utf8');
        } catch (error) {
          ctx.usage(`cannot read --notes-file ${flags['notes-file']}: ${(error as Error).message}`);
        }
      }
      const created = await api<TemplateVersionView>(
        ctx.client,
        'POST',
        templatePath(slugOf(template), '/versions'),
        {
          version,
          status: flags.status,
          releaseNotes,
          variables: flags.variable?.map((v) => parseVariable(ctx, v)),
          secrets: flags.secret?.map((name) => ({ name })),
          ...config,
        },
      );
      ctx.print(created, `created ${created.ref} (${created.status})`);
    },
  },
  {
    name: 'templates versions set-status',
    args: ['<template>', '<version>', '<status>'],
    summary: `move a template version along its lifecycle (${STATUSES.join(', ')})`,
    flags: {
      message: { type: 'string', value: 'M', description: 'what users should do (needed to deprecate)' },
      reason: { type: 'string', value: 'R', description: 'why, for the audit trail' },
    },
    async run(ctx) {
      const status = ctx.positionals[2] as string;
      if (!(STATUSES as readonly string[]).includes(status)) {
        ctx.usage(`status ${status} is not one of ${STATUSES.join(', ')}`);
      }
      await setStatus(ctx, status, ctx.flags.message as string | undefined);
    },
  },
  {
    name: 'templates deprecate',
    args: ['<template>', '<version>'],
    summary: 'deprecate a template version: versions created from it get a warning',
    flags: {
      message: { type: 'string', value: 'M', required: true, description: 'what users should do instead' },
      reason: { type: 'string', value: 'R', description: 'why, for the audit trail' },
    },
    async run(ctx) {
      await setStatus(ctx, 'deprecated', ctx.flags.message as string);
    },
  },
  {
    name: 'templates usage',
    args: ['<template>'],
    summary: 'servers following a template, which version, whether behind, missing secrets',
    async run(ctx) {
      const [template] = ctx.positionals as [string];
      const usage = await api<TemplateUsage>(ctx.client, 'GET', templatePath(slugOf(template), '/usage'));
      ctx.print(
        usage,
        usage.servers.length === 0
          ? `no server follows ${usage.template} (latest ${usage.latest ?? '-'})`
          : table(
              ['SERVER', 'FOLLOWS', 'LATEST', 'BEHIND', 'MISSING SECRETS'],
              usage.servers.map((s) => [
                s.server,
                s.follows,
                usage.latest ?? '-',
                s.behind ? 'yes' : 'no',
                s.missingSecrets.join(', ') || '-',
              ]),
            ),
      );
    },
  },
];
