import { AppError } from '#core/errors.ts';
import { api, query, shortTime, table, type Command } from '../client.ts';

interface Deprecation {
  versions: string;
  message: string;
  replacement: string | null;
}

interface Usage {
  servers: number;
  versions: number;
  notAllowed: number;
  deprecated: number;
}

interface Entry {
  registryType: string;
  identifier: string;
  description: string;
  owners: string[];
  allowed: string | null;
  deprecations: Deprecation[];
  updatedAt: string;
  updatedBy: string;
}

interface Catalogued extends Entry {
  usage: Usage;
}

interface Uncatalogued {
  registryType: string;
  identifier: string;
  usage: { servers: number; versions: number };
  packageVersions: string[];
}

interface Detail {
  registryType: string;
  identifier: string;
  entry: Entry | null;
  uses: {
    server: string;
    version: string;
    status: string;
    packageVersion: string;
    allowed: boolean;
    deprecated: boolean;
    deprecation: Deprecation | null;
  }[];
  summary: {
    packageVersion: string;
    servers: number;
    versions: number;
    allowed: boolean;
    deprecated: boolean;
  }[];
  usage: Usage;
}

/** The identifier URL-encoded: npm scopes (@acme/sdk) and OCI images (ghcr.io/acme/img) contain `/`. */
const packagePath = (registryType: string, identifier: string) =>
  `/packages/${encodeURIComponent(registryType)}/${encodeURIComponent(identifier)}`;

const deprecationText = (d: Deprecation) => `${d.message}${d.replacement ? ` (use ${d.replacement})` : ''}`;

function describeEntry(entry: Entry): string[] {
  return [
    `${entry.registryType} ${entry.identifier}${entry.description ? ` — ${entry.description}` : ''}`,
    `allowed:     ${entry.allowed ?? 'any version'}`,
    `owners:      ${entry.owners.length ? entry.owners.join(', ') : '-'}`,
    ...(entry.deprecations.length
      ? entry.deprecations.map(
          (d, i) => `${i === 0 ? 'deprecated: ' : '            '} ${d.versions}: ${deprecationText(d)}`,
        )
      : ['deprecated:  -']),
    `updated:     ${shortTime(entry.updatedAt)} UTC by ${entry.updatedBy}`,
  ];
}

export const packageCommands: Command[] = [
  {
    name: 'packages list',
    summary: 'the shared packages catalogue with usage, and the packages in use that are not catalogued',
    flags: {
      'registry-type': { type: 'string', value: 'T', description: 'npm, pypi, oci, homebrew or nuget' },
      search: { type: 'string', value: 'TEXT', description: 'only packages whose name contains TEXT' },
    },
    async run(ctx) {
      const body = await api<{ packages: Catalogued[]; uncatalogued: Uncatalogued[] }>(
        ctx.client,
        'GET',
        `/packages${query({
          registryType: ctx.flags['registry-type'] as string | undefined,
          q: ctx.flags.search as string | undefined,
        })}`,
      );
      const lines = [
        body.packages.length === 0
          ? 'no package is catalogued; catalogue one with pylee packages set <registryType> <identifier>'
          : table(
              [
                'TYPE',
                'PACKAGE',
                'ALLOWED',
                'DEPRECATED',
                'OWNERS',
                'SERVERS',
                'VERSIONS',
                'NOT ALLOWED',
                'DEPRECATED USES',
              ],
              body.packages.map((p) => [
                p.registryType,
                p.identifier,
                p.allowed ?? 'any',
                p.deprecations.map((d) => d.versions).join(' | ') || '-',
                p.owners.join(', ') || '-',
                String(p.usage.servers),
                String(p.usage.versions),
                String(p.usage.notAllowed),
                String(p.usage.deprecated),
              ]),
            ),
      ];
      if (body.uncatalogued.length) {
        lines.push(
          '',
          'In use, not catalogued:',
          table(
            ['TYPE', 'PACKAGE', 'SERVERS', 'VERSIONS', 'PACKAGE VERSIONS'],
            body.uncatalogued.map((p) => [
              p.registryType,
              p.identifier,
              String(p.usage.servers),
              String(p.usage.versions),
              p.packageVersions.join(', '),
            ]),
          ),
        );
      }
      ctx.print(body, lines.join('\n'));
    },
  },
  {
    name: 'packages show',
    args: ['<registryType>', '<identifier>'],
    summary: 'a package: its catalogue entry and every version that uses it, allowed or deprecated',
    async run(ctx) {
      const [type, identifier] = ctx.positionals as [string, string];
      const d = await api<Detail>(ctx.client, 'GET', packagePath(type, identifier));
      const standing = (u: Detail['uses'][number]) =>
        [
          ...(u.allowed ? [] : [`not allowed (${d.entry?.allowed})`]),
          ...(u.deprecation ? [`deprecated: ${deprecationText(u.deprecation)}`] : []),
        ].join('; ') || 'allowed';
      const lines = [
        ...(d.entry ? describeEntry(d.entry) : [`${d.registryType} ${d.identifier} is not catalogued`]),
        '',
        `used by ${d.usage.versions} version${d.usage.versions === 1 ? '' : 's'} of ${d.usage.servers} server${d.usage.servers === 1 ? '' : 's'} (not retired): ${d.usage.notAllowed} not allowed, ${d.usage.deprecated} deprecated`,
        ...(d.uses.length
          ? [
              '',
              table(
                ['SERVER', 'VERSION', 'STATUS', 'PACKAGE VERSION', 'STANDING'],
                d.uses.map((u) => [u.server, u.version, u.status, u.packageVersion, standing(u)]),
              ),
            ]
          : []),
      ];
      ctx.print(d, lines.join('\n'));
    },
  },
  {
    name: 'packages set',
    args: ['<registryType>', '<identifier>'],
    summary: 'catalogue a package, or change its allowed versions, owners or description',
    flags: {
      allowed: {
        type: 'string',
        value: 'RANGE',
        description: 'allowed versions: npm ^2.1.0, pypi >=2.31,<3, oci/homebrew/nuget 1.4.*, 1.5.0',
      },
      'any-version': { type: 'boolean', description: 'allow every version again' },
      owner: { type: 'string', multiple: true, value: 'O', description: 'an owning team or person (repeat)' },
      description: { type: 'string', value: 'D', description: 'what the package is' },
    },
    async run(ctx) {
      const [type, identifier] = ctx.positionals as [string, string];
      if (ctx.flags.allowed !== undefined && ctx.flags['any-version'])
        ctx.usage('give --allowed RANGE or --any-version, not both');
      const body = {
        ...(ctx.flags.allowed !== undefined ? { allowed: ctx.flags.allowed } : {}),
        ...(ctx.flags['any-version'] ? { allowed: null } : {}),
        ...(ctx.flags.owner !== undefined ? { owners: ctx.flags.owner } : {}),
        ...(ctx.flags.description !== undefined ? { description: ctx.flags.description } : {}),
      };
      const p = await api<Catalogued>(ctx.client, 'PUT', packagePath(type, identifier), body);
      const flagged = [
        ...(p.usage.notAllowed ? [`${p.usage.notAllowed} outside the allowed versions`] : []),
        ...(p.usage.deprecated ? [`${p.usage.deprecated} deprecated`] : []),
      ];
      ctx.print(
        p,
        [
          ...describeEntry(p),
          `used by ${p.usage.versions} version${p.usage.versions === 1 ? '' : 's'}${flagged.length ? `: ${flagged.join(', ')}` : ''}`,
        ].join('\n'),
      );
    },
  },
  {
    name: 'packages deprecate',
    args: ['<registryType>', '<identifier>', '<versions>'],
    summary: 'deprecate versions of a package (in its range syntax), with a message and a replacement',
    flags: {
      message: { type: 'string', value: 'M', required: true, description: 'why, and what to do instead' },
      replacement: { type: 'string', value: 'V', description: 'the version to use instead' },
    },
    async run(ctx) {
      const [type, identifier, versions] = ctx.positionals as [string, string, string];
      let current: Deprecation[] = [];
      try {
        const d = await api<Detail>(ctx.client, 'GET', packagePath(type, identifier));
        current = d.entry?.deprecations ?? [];
      } catch (error) {
        // Neither catalogued nor used: the PUT below catalogues it.
        if (!(error instanceof AppError && error.code === 'package-not-found')) throw error;
      }
      const deprecation = {
        versions,
        message: ctx.flags.message as string,
        replacement: (ctx.flags.replacement as string | undefined) ?? null,
      };
      // Deprecating the same versions again replaces the message.
      const deprecations = [...current.filter((d) => d.versions !== versions), deprecation];
      const p = await api<Catalogued>(ctx.client, 'PUT', packagePath(type, identifier), { deprecations });
      ctx.print(
        p,
        `${p.registryType} ${p.identifier} ${versions} deprecated: ${deprecationText(deprecation)}; ${p.usage.deprecated} version${p.usage.deprecated === 1 ? '' : 's'} use a deprecated version`,
      );
    },
  },
  {
    name: 'packages delete',
    args: ['<registryType>', '<identifier>'],
    summary: 'remove a package from the catalogue (its uses stay, no longer checked)',
    async run(ctx) {
      const [type, identifier] = ctx.positionals as [string, string];
      await api(ctx.client, 'DELETE', packagePath(type, identifier));
      ctx.print(
        { deleted: { registryType: type, identifier } },
        `removed ${type} ${identifier} from the catalogue`,
      );
    },
  },
];
