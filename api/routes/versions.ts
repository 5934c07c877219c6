import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { SecretBox } from '#core/crypto/secret-box.ts';
import type { Db } from '#core/db/client.ts';
import { resolveConfig } from '#core/registry/resolved-config.ts';
import { fromServerJson, Icon, Repository, toServerJson } from '#core/registry/server-json.ts';
import { findServer } from '#core/registry/servers.ts';
import {
  createVersion,
  getVersion,
  latestVersion,
  listVersions,
  suggestNextVersion,
  updateVersion,
  type NewVersion,
  type VersionPatch,
} from '#core/registry/versions.ts';
import { scanNamedVersion } from '#core/vulns/findings.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';
import { ServerParams } from './servers.ts';

const Status = Type.Union([
  Type.Literal('development'),
  Type.Literal('release-candidate'),
  Type.Literal('stable'),
  Type.Literal('deprecated'),
  Type.Literal('retired'),
]);
const VersionString = Type.String({
  minLength: 1,
  maxLength: 256,
  description: 'Semver: MAJOR.MINOR.PATCH[-pre][+build]',
});
// Notes are checked for size in core (with a sentence saying the limit); this only stops absurd bodies early.
const Document = Type.String({ maxLength: 4 * 1024 * 1024 });

/**
 * The server.json fields a version carries, as requests send them. Only their outer shape is
 * checked here: core's checkVersionConfig checks them in full, and its errors name the JSON path and
 * the fix (`packages[0].registryType "cargo" is not a registry Pylee supports: use one of …`), which
 * a schema error here would pre-empt.
 */
const ConfigFields = {
  title: Type.Optional(Type.String({ maxLength: 200 })),
  websiteUrl: Type.Optional(Type.String({ maxLength: 2048 })),
  repository: Type.Optional(
    Type.Unknown({ description: 'server.json repository: { url, source, id?, subfolder? }' }),
  ),
  remotes: Type.Optional(
    Type.Array(Type.Unknown(), {
      description:
        'server.json remotes: { type: streamable-http | sse, url with {placeholders}, headers?, variables? }',
    }),
  ),
  packages: Type.Optional(
    Type.Array(Type.Unknown(), {
      description:
        'server.json packages: { registryType: npm | pypi | oci | homebrew | nuget, identifier, version (exact, not latest), transport, … }',
    }),
  ),
  icons: Type.Optional(Type.Array(Type.Unknown(), { description: 'server.json icons' })),
  meta: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
};

/** The same fields in responses (remotes and packages are added as open arrays below). */
const ConfigView = {
  title: Type.Optional(Type.String()),
  websiteUrl: Type.Optional(Type.String()),
  repository: Type.Optional(Repository),
  icons: Type.Optional(Type.Array(Icon)),
  meta: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
};

const Transition = Type.Object({
  from: Nullable(Type.String()),
  to: Type.String(),
  at: Timestamp,
  actor: Type.String(),
  reason: Nullable(Type.String()),
});

const Variable = Type.Object({
  name: Type.String(),
  scope: Type.String(),
  environment: Nullable(Type.String()),
  secret: Type.Boolean(),
  value: Type.Optional(Type.String()),
  fingerprint: Type.Optional(Type.String()),
  revision: Type.Integer(),
  updatedAt: Timestamp,
  updatedBy: Type.String(),
});

const VersionFields = {
  server: Type.String(),
  version: Type.String(),
  status: Status,
  prerelease: Type.Boolean(),
  releaseNotes: Type.String({ description: 'Markdown' }),
  breaking: Type.Boolean(),
  migrationGuide: Type.String({ description: 'Markdown' }),
  semverViolation: Nullable(Type.String()),
  ...ConfigView,
  remotes: Type.Array(Type.Unknown()),
  packages: Type.Array(Type.Unknown()),
  deprecation: Nullable(
    Type.Object({ date: Timestamp, message: Type.String(), replacement: Nullable(Type.String()) }),
  ),
  createdFrom: Nullable(Type.String()),
  createdBy: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  releasedAt: Nullable(Timestamp),
  allowedTransitions: Type.Array(Type.String()),
};

export const VersionView = Type.Object(VersionFields);
export const VersionDetail = Type.Object({
  ...VersionFields,
  line: Type.Object({
    pattern: Type.String(),
    declared: Type.Boolean(),
    endOfSupport: Nullable(Type.String()),
    supported: Type.Boolean(),
  }),
  template: Nullable(
    Type.String({ description: 'The template version it was created from: @org/name@1.2.0' }),
  ),
  transitions: Type.Array(Transition),
  variables: Type.Array(Variable),
  secrets: Type.Array(Variable),
});

const Warning = Type.Object({
  code: Type.String({ description: 'package-not-allowed | package-deprecated | template-deprecated' }),
  message: Type.String(),
  registryType: Type.Optional(Type.String()),
  identifier: Type.Optional(Type.String()),
  version: Type.Optional(Type.String()),
});

/** A created version, with what the package catalogue and its template warn about. */
const CreatedVersion = Type.Object({ ...VersionDetail.properties, warnings: Type.Array(Warning) });

const VersionParams = Type.Object(
  { server: Type.String({ maxLength: 64 }), version: VersionString },
  { additionalProperties: false },
);

const LinePattern = Type.String({
  maxLength: 32,
  description: 'A maintenance line: MAJOR.x or MAJOR.MINOR.x',
});

const CreateVersion = Type.Object(
  {
    version: Type.Optional(VersionString),
    prerelease: Type.Optional(
      Type.Object(
        {
          branch: Type.String({
            minLength: 1,
            maxLength: 200,
            description: 'Number a development version X.Y.Z-<branch>.N from this branch (version left out)',
          }),
        },
        { additionalProperties: false },
      ),
    ),
    line: Type.Optional(LinePattern),
    status: Type.Optional(Status),
    releaseNotes: Type.Optional(Document),
    breaking: Type.Optional(Type.Boolean()),
    migrationGuide: Type.Optional(Document),
    from: Type.Optional(
      Type.String({ maxLength: 256, description: 'Copy the configuration of this version' }),
    ),
    template: Type.Optional(
      Type.String({
        maxLength: 200,
        description: 'Start from this template version: @org/name@1.2.0 (or @org/name for its latest stable)',
      }),
    ),
    acknowledgeSemverViolation: Type.Optional(Type.Boolean()),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
    ...ConfigFields,
  },
  { additionalProperties: false },
);

const UpdateVersion = Type.Object(
  {
    status: Type.Optional(Status),
    reason: Type.Optional(Type.String({ maxLength: 2000 })),
    releaseNotes: Type.Optional(Document),
    migrationGuide: Type.Optional(Document),
    breaking: Type.Optional(Type.Boolean()),
    acknowledgeSemverViolation: Type.Optional(Type.Boolean()),
    deprecation: Type.Optional(
      Type.Object(
        {
          message: Type.String({ minLength: 1, maxLength: 2000 }),
          replacement: Type.Optional(Nullable(VersionString)),
          date: Type.Optional(Timestamp),
        },
        { additionalProperties: false },
      ),
    ),
    ...ConfigFields,
  },
  { additionalProperties: false, minProperties: 1 },
);

const conflict = { 409: Type.Ref('Problem') };

/** Versions of a server: read to see, write to create and change. */
export function versionRoutes(db: Db, box: SecretBox): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['versions'];
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');

    app.get(
      '/servers/:server/versions',
      {
        schema: {
          tags,
          summary: 'List versions, highest semver precedence first',
          params: ServerParams,
          querystring: Type.Object(
            {
              status: Type.Optional(Status),
              prerelease: Type.Optional(Type.Boolean()),
              range: Type.Optional(Type.String({ maxLength: 256, description: 'A semver range, e.g. ^1.2' })),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ versions: Type.Array(VersionView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({
        versions: await listVersions(db, contextOf(req).principal, req.params.server, req.query),
      }),
    );

    app.post(
      '/servers/:server/versions',
      {
        schema: {
          tags,
          summary: 'Create a version',
          params: ServerParams,
          body: CreateVersion,
          response: { 201: CreatedVersion, ...conflict, ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const version = await createVersion(db, contextOf(req), req.params.server, req.body as NewVersion);
        await scanNamedVersion(db, contextOf(req).principal, req.params.server, version.version);
        return reply.code(201).send(version);
      },
    );

    app.post(
      '/servers/:server/versions/import',
      {
        schema: {
          tags,
          summary: 'Create a version from an MCP registry server.json document (2025-09-29 schema)',
          params: ServerParams,
          body: Type.Record(Type.String(), Type.Unknown(), { description: 'server.json' }),
          response: { 201: CreatedVersion, ...conflict, ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const doc = fromServerJson(req.body);
        const version = await createVersion(db, contextOf(req), req.params.server, {
          version: doc.version,
          ...doc.config,
        });
        await scanNamedVersion(db, contextOf(req).principal, req.params.server, version.version);
        return reply.code(201).send(version);
      },
    );

    app.get(
      '/servers/:server/versions/latest',
      {
        schema: {
          tags,
          summary:
            'The highest stable version (prerelease=true: the highest active one, pre-releases included)',
          params: ServerParams,
          querystring: Type.Object(
            { prerelease: Type.Optional(Type.Boolean()), line: Type.Optional(LinePattern) },
            { additionalProperties: false },
          ),
          response: { 200: VersionDetail, ...problems },
        },
        preHandler: read,
      },
      async (req) =>
        latestVersion(db, contextOf(req).principal, req.params.server, req.query.prerelease, req.query.line),
    );

    app.get(
      '/servers/:server/versions/next',
      {
        schema: {
          tags,
          summary: 'The next version number to suggest',
          params: ServerParams,
          querystring: Type.Object(
            {
              bump: Type.Union([
                Type.Literal('major'),
                Type.Literal('minor'),
                Type.Literal('patch'),
                Type.Literal('prerelease'),
                Type.Literal('premajor'),
                Type.Literal('preminor'),
                Type.Literal('prepatch'),
              ]),
              preid: Type.Optional(Type.String({ pattern: '^[0-9A-Za-z-]{1,32}$' })),
              line: Type.Optional(LinePattern),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              current: Nullable(Type.String()),
              next: Type.String(),
              bump: Type.String(),
              line: Type.Optional(Type.String()),
            }),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) =>
        suggestNextVersion(
          db,
          contextOf(req).principal,
          req.params.server,
          req.query.bump,
          req.query.preid,
          req.query.line,
        ),
    );

    app.get(
      '/servers/:server/versions/:version',
      {
        schema: {
          tags,
          summary: 'Get a version',
          params: VersionParams,
          response: { 200: VersionDetail, ...problems },
        },
        preHandler: read,
      },
      async (req) => getVersion(db, contextOf(req).principal, req.params.server, req.params.version),
    );

    app.patch(
      '/servers/:server/versions/:version',
      {
        schema: {
          tags,
          summary: 'Change status, notes or deprecation (configuration only while in development)',
          params: VersionParams,
          body: UpdateVersion,
          response: { 200: VersionDetail, ...conflict, ...problems },
        },
        preHandler: write,
      },
      async (req) =>
        updateVersion(db, contextOf(req), req.params.server, req.params.version, req.body as VersionPatch),
    );

    app.get(
      '/servers/:server/versions/:version/resolved-config',
      {
        schema: {
          tags,
          summary:
            'The configuration a deployment would run with, secrets included (deploy permission; audited)',
          params: VersionParams,
          querystring: Type.Object(
            { environment: Type.Optional(Type.String({ maxLength: 64 })) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              server: Type.String(),
              version: Type.String(),
              environment: Nullable(Type.String()),
              config: Type.Record(Type.String(), Type.Unknown()),
              variables: Type.Record(
                Type.String(),
                Type.Object({ value: Type.String(), secret: Type.Boolean(), scope: Type.String() }),
              ),
              missing: Type.Array(
                Type.Object({
                  name: Type.String(),
                  isRequired: Type.Boolean(),
                  isSecret: Type.Boolean(),
                  default: Type.Optional(Type.String()),
                  where: Type.String(),
                }),
              ),
            }),
            ...problems,
          },
        },
        preHandler: app.requirePermission('deploy'),
      },
      async (req) =>
        resolveConfig(db, box, contextOf(req), req.params.server, req.params.version, req.query.environment),
    );

    app.get(
      '/servers/:server/versions/:version/server.json',
      {
        schema: {
          tags,
          summary: 'Export a version as an MCP registry server.json document',
          params: VersionParams,
          response: { 200: Type.Record(Type.String(), Type.Unknown()), ...problems },
        },
        preHandler: read,
      },
      async (req) => {
        const { principal } = contextOf(req);
        const server = await findServer(db, principal, req.params.server);
        const version = await getVersion(db, principal, req.params.server, req.params.version);
        return toServerJson({
          name: `${principal.orgSlug}/${server.slug}`,
          // server.json limits descriptions to 100 characters.
          description: (server.description || server.name).slice(0, 100),
          version: version.version,
          config: {
            title: version.title,
            websiteUrl: version.websiteUrl,
            repository: version.repository,
            remotes: version.remotes,
            packages: version.packages,
            icons: version.icons,
            meta: version.meta,
          },
        });
      },
    );
  };
}
