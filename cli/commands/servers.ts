import type { CreatedServer, ServerDetail, ServerView } from '#core/registry/servers.ts';
import type { VersionView } from '#core/registry/versions.ts';
import { api, query, segment, shortTime, table, type Command } from '../client.ts';

const serverPath = (slug: string) => `/servers/${segment(slug)}`;

function describeServer(server: ServerDetail, versions: VersionView[] | undefined): string {
  const latest = (prerelease: boolean) =>
    versions?.find((v) => v.prerelease === prerelease && (prerelease || v.status === 'stable'))?.version;
  return [
    `${server.fullName} · ${server.name}${server.archived ? ` · ARCHIVED ${shortTime(server.archivedAt)}` : ''}`,
    ...(server.description ? [server.description] : []),
    `repository: ${server.repositoryUrl ?? '-'}`,
    `owners:     ${server.owners.length ? server.owners.join(', ') : '-'}`,
    ...(server.template
      ? [
          `template:   ${server.template.ref}${server.template.behind ? ` · behind: latest ${server.template.latest}` : ''}${server.template.missingSecrets.length ? ` · missing secrets: ${server.template.missingSecrets.join(', ')}` : ''}`,
        ]
      : []),
    `created:    ${shortTime(server.createdAt)} UTC · updated ${shortTime(server.updatedAt)} UTC`,
    ...(versions
      ? [
          `versions:   ${versions.length}${versions.length ? ` · latest stable ${latest(false) ?? '-'} · latest pre-release ${latest(true) ?? '-'}` : ''}`,
        ]
      : []),
  ].join('\n');
}

export const serverCommands: Command[] = [
  {
    name: 'servers create',
    args: ['<slug>'],
    summary: 'register a server',
    flags: {
      name: { type: 'string', value: 'N', description: 'display name (default: the slug)' },
      description: { type: 'string', value: 'D', description: 'one or two sentences on what it does' },
      'repository-url': { type: 'string', value: 'U', description: 'source repository, http(s)' },
      owner: {
        type: 'string',
        multiple: true,
        value: 'O',
        description: 'an owning team or person; repeat for more',
      },
      template: {
        type: 'string',
        value: '@ORG/T@V',
        description: 'create it from a template version: its variable defaults are set on the server',
      },
    },
    async run(ctx) {
      const [slug] = ctx.positionals as [string];
      const flags = ctx.flags as {
        name?: string;
        description?: string;
        'repository-url'?: string;
        owner?: string[];
        template?: string;
      };
      const server = await api<CreatedServer>(ctx.client, 'POST', '/servers', {
        slug,
        name: flags.name,
        description: flags.description,
        repositoryUrl: flags['repository-url'],
        owners: flags.owner,
        template: flags.template,
      });
      ctx.print(
        server,
        `created ${server.fullName} (${server.name})${server.template ? ` from template ${server.template}` : ''}${
          server.secretsToProvide?.length
            ? `\nsecrets to provide: ${server.secretsToProvide.join(', ')} (set each with PUT /api/v1/servers/${slug}/secrets/NAME)`
            : ''
        }`,
      );
    },
  },
  {
    name: 'servers list',
    summary: 'list servers',
    flags: { all: { type: 'boolean', description: 'include archived servers' } },
    async run(ctx) {
      const { servers } = await api<{ servers: ServerView[] }>(
        ctx.client,
        'GET',
        `/servers${query({ includeArchived: ctx.flags.all ? true : undefined })}`,
      );
      ctx.print(
        servers,
        servers.length
          ? table(
              ['SLUG', 'NAME', 'ARCHIVED'],
              servers.map((s) => [s.slug, s.name, s.archived ? 'yes' : 'no']),
            )
          : `no servers${ctx.flags.all ? '' : ' (--all includes archived ones)'}`,
      );
    },
  },
  {
    name: 'servers show',
    args: ['<slug>'],
    summary: 'show a server and its latest versions',
    async run(ctx) {
      const [slug] = ctx.positionals as [string];
      const [server, versions] = await Promise.all([
        api<ServerDetail>(ctx.client, 'GET', serverPath(slug)),
        // Only for the summary line: when it fails, the server is still shown.
        api<{ versions: VersionView[] }>(ctx.client, 'GET', `${serverPath(slug)}/versions`).then(
          (r) => r.versions,
          () => undefined,
        ),
      ]);
      ctx.print(server, describeServer(server, versions));
    },
  },
  ...(['archive', 'unarchive'] as const).map((action): Command => ({
    name: `servers ${action}`,
    args: ['<slug>'],
    summary:
      action === 'archive'
        ? 'archive a server: hidden from lists, no new versions, history kept'
        : 'bring an archived server back',
    async run(ctx) {
      const [slug] = ctx.positionals as [string];
      const server = await api<ServerView>(ctx.client, 'POST', `${serverPath(slug)}/${action}`);
      ctx.print(server, `${action}d ${server.fullName}`);
    },
  })),
];
