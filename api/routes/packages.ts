import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { deletePackage, listPackages, packageDetail, putPackage } from '#core/registry/packages.ts';
import { contextOf } from '../plugins/auth.ts';
import { Nullable, problems, Timestamp } from '../schemas.ts';

const PackageParams = Type.Object(
  {
    registryType: Type.String({ maxLength: 32, description: 'npm | pypi | oci | homebrew | nuget' }),
    identifier: Type.String({
      minLength: 1,
      maxLength: 255,
      description:
        'The package name, URL-encoded: @acme/sdk is %40acme%2Fsdk, ghcr.io/acme/img is ghcr.io%2Facme%2Fimg',
    }),
  },
  { additionalProperties: false },
);

const Deprecation = Type.Object({
  versions: Type.String({ description: "The deprecated versions, in the ecosystem's range syntax" }),
  message: Type.String(),
  replacement: Nullable(Type.String()),
});

const Usage = Type.Object(
  {
    servers: Type.Integer(),
    versions: Type.Integer(),
    notAllowed: Type.Integer({ description: 'Versions referencing a package version outside allowed' }),
    deprecated: Type.Integer({ description: 'Versions referencing a deprecated package version' }),
  },
  { description: 'Uses by versions that are not retired, of servers that are not archived' },
);

const Entry = {
  registryType: Type.String(),
  identifier: Type.String(),
  description: Type.String(),
  owners: Type.Array(Type.String()),
  allowed: Nullable(
    Type.String({
      description:
        'Allowed versions: npm a semver range, pypi a PEP 440 specifier set, oci/homebrew/nuget a comma-separated list with * wildcards; null: any version',
    }),
  ),
  deprecations: Type.Array(Deprecation),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  updatedBy: Type.String(),
};
const EntryView = Type.Object(Entry);
const CataloguedPackage = Type.Object({ ...Entry, usage: Usage });

const Uncatalogued = Type.Object({
  registryType: Type.String(),
  identifier: Type.String(),
  usage: Type.Object({ servers: Type.Integer(), versions: Type.Integer() }),
  packageVersions: Type.Array(Type.String()),
});

const Use = Type.Object({
  server: Type.String(),
  version: Type.String(),
  status: Type.String(),
  identifier: Type.String(),
  packageVersion: Type.String(),
  allowed: Type.Boolean(),
  deprecated: Type.Boolean(),
  deprecation: Nullable(Deprecation),
});

const Detail = Type.Object({
  registryType: Type.String(),
  identifier: Type.String(),
  entry: Nullable(EntryView),
  uses: Type.Array(Use),
  summary: Type.Array(
    Type.Object({
      packageVersion: Type.String(),
      servers: Type.Integer(),
      versions: Type.Integer(),
      allowed: Type.Boolean(),
      deprecated: Type.Boolean(),
    }),
  ),
  usage: Usage,
});

const PutBody = Type.Object(
  {
    description: Type.Optional(Type.String({ maxLength: 2000 })),
    owners: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { maxItems: 50 })),
    allowed: Type.Optional(Nullable(Type.String({ maxLength: 500 }))),
    deprecations: Type.Optional(
      Type.Array(
        Type.Object(
          {
            versions: Type.String({ maxLength: 500 }),
            // Required, checked in core so that a missing one is said with an example.
            message: Type.Optional(Type.String({ maxLength: 1000, description: 'Required' })),
            replacement: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
          },
          { additionalProperties: false },
        ),
        { maxItems: 50 },
      ),
    ),
  },
  { additionalProperties: false },
);

/** The org's catalogue of shared packages: read to see, write to change. */
export function packageRoutes(db: Db): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['packages'];
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');
    app.get(
      '/packages',
      {
        schema: {
          tags,
          summary: 'The package catalogue with usage, and the packages in use that are not catalogued',
          querystring: Type.Object(
            {
              registryType: Type.Optional(Type.String({ maxLength: 32 })),
              q: Type.Optional(Type.String({ maxLength: 255, description: 'Substring of the name' })),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              packages: Type.Array(CataloguedPackage),
              uncatalogued: Type.Array(Uncatalogued),
            }),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => listPackages(db, contextOf(req).principal, req.query),
    );
    app.get(
      '/packages/:registryType/:identifier',
      {
        schema: {
          tags,
          summary: 'One package: its catalogue entry (or null) and every version that uses it, flagged',
          params: PackageParams,
          response: { 200: Detail, ...problems },
        },
        preHandler: read,
      },
      async (req) =>
        packageDetail(db, contextOf(req).principal, req.params.registryType, req.params.identifier),
    );
    app.put(
      '/packages/:registryType/:identifier',
      {
        schema: {
          tags,
          summary: 'Catalogue a package or change its entry (fields left out keep their value)',
          params: PackageParams,
          body: PutBody,
          response: { 200: CataloguedPackage, 201: CataloguedPackage, ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => {
        const { created, package: view } = await putPackage(
          db,
          contextOf(req),
          req.params.registryType,
          req.params.identifier,
          req.body,
        );
        return reply.code(created ? 201 : 200).send(view);
      },
    );
    app.delete(
      '/packages/:registryType/:identifier',
      {
        schema: {
          tags,
          summary: 'Remove a package from the catalogue (its uses stay, no longer checked)',
          params: PackageParams,
          response: { 204: Type.Null(), ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => {
        await deletePackage(db, contextOf(req), req.params.registryType, req.params.identifier);
        return reply.code(204).send(null);
      },
    );
  };
}
