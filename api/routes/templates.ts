import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { templateUsage } from '#core/registry/template-usage.ts';
import {
  createTemplate,
  createTemplateVersion,
  getTemplate,
  getTemplateVersion,
  listTemplates,
  updateTemplateVersion,
  type TemplateVersionInput,
  type TemplateVersionPatch,
} from '#core/registry/templates.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const Status = Type.Union([
  Type.Literal('development'),
  Type.Literal('release-candidate'),
  Type.Literal('stable'),
  Type.Literal('deprecated'),
  Type.Literal('retired'),
]);
const NewStatus = Type.Union([
  Type.Literal('development'),
  Type.Literal('release-candidate'),
  Type.Literal('stable'),
]);
const VersionString = Type.String({
  minLength: 1,
  maxLength: 256,
  description: 'Semver: MAJOR.MINOR.PATCH[-pre][+build]',
});

/**
 * The server.json fields a template fixes, as requests send them: only the outer shape here, core's
 * checkVersionConfig checks them in full with errors naming the JSON path (as for versions).
 */
const ConfigFields = {
  title: Type.Optional(Type.String({ maxLength: 200 })),
  websiteUrl: Type.Optional(Type.String({ maxLength: 2048 })),
  repository: Type.Optional(Type.Unknown({ description: 'server.json repository' })),
  remotes: Type.Optional(Type.Array(Type.Unknown(), { description: 'server.json remotes' })),
  packages: Type.Optional(Type.Array(Type.Unknown(), { description: 'server.json packages' })),
  icons: Type.Optional(Type.Array(Type.Unknown(), { description: 'server.json icons' })),
  meta: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
};

const TemplateParams = Type.Object(
  { template: Type.String({ maxLength: 64 }) },
  { additionalProperties: false },
);
const TemplateVersionParams = Type.Object(
  { template: Type.String({ maxLength: 64 }), version: VersionString },
  { additionalProperties: false },
);

const TemplateFields = {
  slug: Type.String(),
  fullName: Type.String({ description: '@org/slug' }),
  name: Type.String(),
  description: Type.String(),
  owners: Type.Array(Type.String()),
  latest: Nullable(Type.String({ description: 'The highest stable version' })),
  versionCount: Type.Integer(),
  servers: Type.Integer({ description: 'Servers following one of its versions' }),
  behind: Type.Integer({ description: 'Of those, how many follow a version older than latest' }),
  createdBy: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
};
const TemplateView = Type.Object(TemplateFields);

const Variable = Type.Object({ name: Type.String(), description: Type.String(), default: Type.String() });
const Secret = Type.Object({ name: Type.String(), description: Type.String() });

const TemplateVersionView = Type.Object({
  template: Type.String({ description: '@org/slug' }),
  ref: Type.String({ description: '@org/slug@version, for template: in POST /servers and …/versions' }),
  version: Type.String(),
  status: Status,
  prerelease: Type.Boolean(),
  releaseNotes: Type.String(),
  config: Type.Record(Type.String(), Type.Unknown(), { description: 'The server.json fields it fixes' }),
  variables: Type.Array(Variable),
  secrets: Type.Array(Secret),
  deprecation: Nullable(Type.Object({ date: Timestamp, message: Type.String() })),
  servers: Type.Integer({ description: 'Servers following this version' }),
  allowedTransitions: Type.Array(Type.String()),
  createdBy: Type.String(),
  createdAt: Timestamp,
  updatedAt: Timestamp,
});

const TemplateDetail = Type.Object({ ...TemplateFields, versions: Type.Array(TemplateVersionView) });

const Usage = Type.Object({
  template: Type.String(),
  latest: Nullable(Type.String()),
  servers: Type.Array(
    Type.Object({
      server: Type.String(),
      follows: Type.String({ description: 'The template version it follows' }),
      ref: Type.String(),
      behind: Type.Boolean(),
      versions: Type.Array(
        Type.Object({
          version: Type.String(),
          status: Type.String(),
          template: Type.String({ description: 'The template version it was created from' }),
        }),
      ),
      missingSecrets: Type.Array(Type.String()),
    }),
  ),
});

const conflict = { 409: Type.Ref('Problem') };

/** Server templates of the caller's org: read to see, write to create and change. */
export function templateRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['templates'];
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');

    app.get(
      '/templates',
      {
        schema: {
          tags,
          summary: 'List templates with their latest stable version and how many servers are behind it',
          response: { 200: Type.Object({ templates: Type.Array(TemplateView) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ templates: await listTemplates(db, contextOf(req).principal) }),
    );

    app.post(
      '/templates',
      {
        schema: {
          tags,
          summary: 'Create a template',
          body: Type.Object(
            {
              slug: Type.String({
                maxLength: 256,
                description: '2-64 lowercase letters, digits or dashes, not starting or ending with a dash',
              }),
              name: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
              description: Type.Optional(Type.String({ maxLength: 2000 })),
              owners: Type.Optional(
                Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 50 }),
              ),
            },
            { additionalProperties: false },
          ),
          response: { 201: TemplateDetail, ...conflict, ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => reply.code(201).send(await createTemplate(db, contextOf(req), req.body)),
    );

    app.get(
      '/templates/:template',
      {
        schema: {
          tags,
          summary: 'Get a template with its versions, highest first',
          params: TemplateParams,
          response: { 200: TemplateDetail, ...problems },
        },
        preHandler: read,
      },
      async (req) => getTemplate(db, contextOf(req).principal, req.params.template),
    );

    app.post(
      '/templates/:template/versions',
      {
        schema: {
          tags,
          summary: 'Add an (immutable) version to a template',
          params: TemplateParams,
          body: Type.Object(
            {
              version: VersionString,
              status: Type.Optional(NewStatus),
              releaseNotes: Type.Optional(Type.String({ maxLength: 4 * 1024 * 1024 })),
              variables: Type.Optional(
                Type.Array(
                  Type.Object(
                    {
                      name: Type.String({ maxLength: 256 }),
                      description: Type.Optional(Type.String({ maxLength: 1000 })),
                      default: Type.String({ maxLength: 1024 * 1024 }),
                    },
                    { additionalProperties: false },
                  ),
                  { maxItems: 100, description: 'Set on each server created from the template' },
                ),
              ),
              secrets: Type.Optional(
                Type.Array(
                  Type.Object(
                    {
                      name: Type.String({ maxLength: 256 }),
                      description: Type.Optional(Type.String({ maxLength: 1000 })),
                    },
                    { additionalProperties: false },
                  ),
                  { maxItems: 100, description: 'Secrets every server from the template must set' },
                ),
              ),
              ...ConfigFields,
            },
            { additionalProperties: false },
          ),
          response: { 201: TemplateVersionView, ...conflict, ...problems },
        },
        preHandler: write,
      },
      async (req, reply) =>
        reply
          .code(201)
          .send(
            await createTemplateVersion(
              db,
              contextOf(req),
              req.params.template,
              req.body as TemplateVersionInput,
            ),
          ),
    );

    app.get(
      '/templates/:template/versions/:version',
      {
        schema: {
          tags,
          summary: 'Get a template version',
          params: TemplateVersionParams,
          response: { 200: TemplateVersionView, ...problems },
        },
        preHandler: read,
      },
      async (req) =>
        getTemplateVersion(db, contextOf(req).principal, req.params.template, req.params.version),
    );

    app.patch(
      '/templates/:template/versions/:version',
      {
        schema: {
          tags,
          summary: 'Release, deprecate or retire a template version (its content is immutable)',
          params: TemplateVersionParams,
          body: Type.Object(
            {
              status: Type.Optional(Status),
              reason: Type.Optional(Type.String({ maxLength: 2000 })),
              deprecation: Type.Optional(
                Type.Object(
                  { message: Type.String({ minLength: 1, maxLength: 2000 }) },
                  { additionalProperties: false },
                ),
              ),
              // Accepted only to answer with "immutable, cut a new version" rather than a schema error.
              variables: Type.Optional(Type.Unknown()),
              secrets: Type.Optional(Type.Unknown()),
              releaseNotes: Type.Optional(Type.Unknown()),
              ...ConfigFields,
            },
            { additionalProperties: false, minProperties: 1 },
          ),
          response: { 200: TemplateVersionView, ...conflict, ...problems },
        },
        preHandler: write,
      },
      async (req) =>
        updateTemplateVersion(
          db,
          contextOf(req),
          req.params.template,
          req.params.version,
          req.body as TemplateVersionPatch,
        ),
    );

    app.get(
      '/templates/:template/usage',
      {
        schema: {
          tags,
          summary:
            'Servers following the template: the version each follows, whether it is behind, its versions from the template, missing secrets',
          params: TemplateParams,
          response: { 200: Usage, ...problems },
        },
        preHandler: read,
      },
      async (req) => templateUsage(db, contextOf(req).principal, req.params.template),
    );
  };
}
