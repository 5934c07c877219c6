import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Db } from '#core/db/client.ts';
import { BadRequestError } from '#core/errors.ts';
import type { EventPublisher } from '#core/notify/events.ts';
import { advisoryStatus, importAdvisories } from '#core/vulns/advisories.ts';
import { announceVulnerable } from '#core/vulns/events.ts';
import { orgVulnerabilities, versionVulnerabilities } from '#core/vulns/findings.ts';
import { createIgnore, deleteIgnore, listIgnores } from '#core/vulns/ignores.ts';
import { proposePatch } from '#core/vulns/patch.ts';
import { attachSbom } from '#core/vulns/sbom.ts';
import { scanNamedVersion } from '#core/vulns/findings.ts';
import { contextOf } from '../plugins/auth.ts';
import { IdParams, Nullable, problems, Timestamp } from '../schemas.ts';

/** An ecosystem's all.zip is tens of MiB (npm's is the largest); the API's JSON limit does not apply. */
export const MAX_ADVISORY_UPLOAD_BYTES = 512 * 1024 * 1024;
const ZIP_TYPES = ['application/zip', 'application/x-zip-compressed', 'application/octet-stream'];

const literals = <T extends readonly string[]>(values: T) => Type.Union(values.map((v) => Type.Literal(v)));
const Level = literals(['low', 'medium', 'high', 'critical', 'unknown'] as const);
const Threshold = Type.String({ maxLength: 16, description: 'low | medium | high | critical' });
const Counts = Type.Object({
  critical: Type.Integer(),
  high: Type.Integer(),
  medium: Type.Integer(),
  low: Type.Integer(),
  unknown: Type.Integer(),
});
const PerEcosystem = Type.Object({ npm: Type.Integer(), pypi: Type.Integer(), nuget: Type.Integer() });

const Finding = Type.Object({
  package: Type.Object({ registryType: Type.String(), identifier: Type.String(), version: Type.String() }),
  advisory: Type.Object({
    id: Type.String(),
    aliases: Type.Array(Type.String()),
    summary: Type.String(),
    severity: Level,
    score: Nullable(Type.Number()),
    vector: Nullable(Type.String()),
    link: Type.String(),
  }),
  fixed: Type.Array(Type.String(), { description: "Fixed versions in the package's own ecosystem" }),
  ignoredBy: Nullable(
    Type.Object({ id: Type.String(), reason: Type.String(), expiresAt: Nullable(Timestamp) }),
  ),
});

const Coverage = Type.Object({
  registryType: Type.String(),
  identifier: Type.String(),
  version: Type.String(),
  status: literals(['scanned', 'not-scanned', 'not-covered'] as const),
  reason: Type.Optional(Type.String()),
});

const VersionReport = Type.Object({
  server: Type.String(),
  version: Type.String(),
  scannedAt: Nullable(Timestamp),
  coverage: Type.Array(Coverage),
  findings: Type.Array(Finding),
  ignored: Type.Array(Finding),
  counts: Counts,
});

const ImportSummary = Type.Object({
  records: Type.Integer(),
  imported: Type.Integer(),
  unchanged: Type.Integer(),
  withdrawn: Type.Integer(),
  skipped: Type.Integer(),
  perEcosystem: PerEcosystem,
});

const IgnoreRule = Type.Object({
  id: Type.String(),
  advisory: Type.String(),
  package: Nullable(Type.String()),
  server: Nullable(Type.String()),
  reason: Type.String(),
  expiresAt: Nullable(Timestamp),
  createdBy: Type.String(),
  createdAt: Timestamp,
  active: Type.Boolean(),
});

const VersionParams = Type.Object(
  { server: Type.String({ maxLength: 64 }), version: Type.String({ minLength: 1, maxLength: 256 }) },
  { additionalProperties: false },
);

/** The advisory database, findings per version and org-wide, and ignore rules. */
export function vulnerabilityRoutes(db: Db, publisher: EventPublisher): FastifyPluginAsyncTypebox {
  return async (app) => {
    const tags = ['vulnerabilities'];
    const read = app.requirePermission('read');
    const write = app.requirePermission('write');

    // Zip uploads only here (this plugin's scope): the rest of the API stays JSON-only.
    app.addContentTypeParser(
      ZIP_TYPES,
      { parseAs: 'buffer', bodyLimit: MAX_ADVISORY_UPLOAD_BYTES },
      (_req, body, done) => done(null, body),
    );

    app.post(
      '/advisories/import',
      {
        bodyLimit: MAX_ADVISORY_UPLOAD_BYTES,
        schema: {
          tags,
          summary: 'Import an OSV export (all.zip; zips inside are read too), all or nothing (admin)',
          consumes: ZIP_TYPES,
          querystring: Type.Object(
            {
              ecosystem: Type.Optional(
                Type.String({ maxLength: 32, description: 'only this one: npm, PyPI, NuGet' }),
              ),
              source: Type.Optional(Type.String({ maxLength: 500, description: 'recorded with the import' })),
            },
            { additionalProperties: false },
          ),
          body: {
            content: {
              'application/json': {
                schema: Type.Object(
                  { records: Type.Array(Type.Unknown(), { maxItems: 100_000, description: 'OSV records' }) },
                  { additionalProperties: false },
                ),
              },
              ...Object.fromEntries(
                ZIP_TYPES.map((type) => [
                  type,
                  { schema: Type.Unsafe({ description: 'an OSV all.zip export' }) },
                ]),
              ),
            },
          },
          response: {
            200: Type.Object({
              ...ImportSummary.properties,
              changed: Type.Integer({ description: 'advisories added, replaced or withdrawn' }),
              rescanned: Type.Integer(),
              newlyAffected: Type.Integer({
                description: 'versions affected by an advisory they were not before',
              }),
              announced: Type.Integer({
                description: 'of those, versions running somewhere: one version.vulnerable event each',
              }),
              durationMs: Type.Number(),
            }),
            413: Type.Ref('Problem'),
            ...problems,
          },
        },
        preHandler: app.requirePermission('admin'),
      },
      async (req) => {
        const body = req.body as Buffer | { records?: unknown[] } | undefined;
        const input = Buffer.isBuffer(body)
          ? { zip: body }
          : body?.records
            ? { records: body.records }
            : undefined;
        if (!input) {
          throw new BadRequestError(
            'send an OSV export as application/zip, or {"records": [...]} as application/json',
            'zip-required',
          );
        }
        const stats = await importAdvisories(db, contextOf(req), input, {
          source: req.query.source ?? 'upload',
          ecosystem: req.query.ecosystem,
        });
        const announced = await announceVulnerable(db, publisher, stats.newlyAffected);
        return {
          ...stats,
          changed: stats.changed.length,
          newlyAffected: stats.newlyAffected.length,
          announced,
        };
      },
    );

    app.get(
      '/advisories/status',
      {
        schema: {
          tags,
          summary: 'Advisories stored per ecosystem and the last import',
          response: {
            200: Type.Object({
              advisories: Type.Integer(),
              perEcosystem: PerEcosystem,
              lastImport: Nullable(
                Type.Object({
                  at: Timestamp,
                  source: Type.String(),
                  importedBy: Type.String(),
                  durationMs: Type.Number(),
                  stats: ImportSummary,
                }),
              ),
            }),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => advisoryStatus(db, contextOf(req)),
    );

    app.get(
      '/servers/:server/versions/:version/vulnerabilities',
      {
        schema: {
          tags,
          summary: "A version's findings (ignore rules applied), at or above a severity",
          params: VersionParams,
          querystring: Type.Object({ severity: Type.Optional(Threshold) }, { additionalProperties: false }),
          response: { 200: VersionReport, ...problems },
        },
        preHandler: read,
      },
      async (req) =>
        versionVulnerabilities(
          db,
          contextOf(req).principal,
          req.params.server,
          req.params.version,
          req.query,
        ),
    );

    app.post(
      '/servers/:server/versions/:version/vulnerabilities/scan',
      {
        schema: {
          tags,
          summary: 'Scan the version again now and return its findings',
          params: VersionParams,
          querystring: Type.Object({ severity: Type.Optional(Threshold) }, { additionalProperties: false }),
          response: { 200: VersionReport, ...problems },
        },
        preHandler: write,
      },
      async (req) =>
        versionVulnerabilities(db, contextOf(req).principal, req.params.server, req.params.version, {
          ...req.query,
          rescan: true,
        }),
    );

    app.put(
      '/servers/:server/versions/:version/sbom',
      {
        schema: {
          tags,
          summary:
            "Attach an SBOM (CycloneDX or SPDX JSON) to one of the version's OCI images; its components are scanned",
          params: VersionParams,
          querystring: Type.Object(
            {
              image: Type.Optional(
                Type.String({ maxLength: 500, description: 'the OCI package identifier' }),
              ),
            },
            { additionalProperties: false },
          ),
          body: Type.Record(Type.String(), Type.Unknown(), { description: 'CycloneDX or SPDX JSON' }),
          response: {
            200: Type.Object({
              image: Type.String(),
              format: Type.String(),
              components: Type.Integer({ description: 'components in npm, PyPI or NuGet' }),
              otherComponents: Type.Integer({ description: 'components of other ecosystems (not covered)' }),
            }),
            ...problems,
          },
        },
        preHandler: write,
      },
      async (req) =>
        attachSbom(db, contextOf(req), req.params.server, req.params.version, req.body, req.query.image),
    );

    app.post(
      '/servers/:server/versions/:version/patch',
      {
        schema: {
          tags,
          summary:
            'Propose the security patch of a version (next patch number, each vulnerable package at its lowest fix in the same major); create: true creates it in development status (write)',
          params: VersionParams,
          body: Type.Object(
            { create: Type.Optional(Type.Boolean({ description: 'create the version (needs write)' })) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              server: Type.String(),
              from: Type.String(),
              version: Type.String(),
              upgrades: Type.Array(
                Type.Object({
                  registryType: Type.String(),
                  identifier: Type.String(),
                  from: Type.String(),
                  to: Type.String(),
                  fixes: Type.Array(Type.String()),
                }),
              ),
              unfixed: Type.Array(
                Type.Object({
                  registryType: Type.String(),
                  identifier: Type.String(),
                  version: Type.String(),
                  advisory: Type.String(),
                  reason: Type.String(),
                }),
              ),
              releaseNotes: Type.String(),
              created: Type.Boolean({ description: 'whether the version was created' }),
            }),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => {
        const ctx = contextOf(req);
        const proposal = await proposePatch(db, ctx, req.params.server, req.params.version, req.body);
        if (proposal.created) await scanNamedVersion(db, ctx.principal, req.params.server, proposal.version);
        return { ...proposal, created: proposal.created !== null };
      },
    );

    app.get(
      '/vulnerabilities',
      {
        schema: {
          tags,
          summary: 'Vulnerable versions of the org and the environments they run in now',
          querystring: Type.Object(
            {
              severity: Type.Optional(Threshold),
              deployed: Type.Optional(Type.Boolean({ description: 'only versions that run somewhere now' })),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({
              versions: Type.Array(
                Type.Object({
                  server: Type.String(),
                  version: Type.String(),
                  status: Type.String(),
                  runningIn: Type.Array(Type.Object({ environment: Type.String(), weight: Type.Integer() })),
                  counts: Counts,
                  findings: Type.Array(Finding),
                }),
              ),
            }),
            ...problems,
          },
        },
        preHandler: read,
      },
      async (req) => ({ versions: await orgVulnerabilities(db, contextOf(req).principal, req.query) }),
    );

    app.get(
      '/vulnerability-ignores',
      {
        schema: {
          tags,
          summary: 'Ignore rules',
          response: { 200: Type.Object({ rules: Type.Array(IgnoreRule) }), ...problems },
        },
        preHandler: read,
      },
      async (req) => ({ rules: await listIgnores(db, contextOf(req).principal) }),
    );

    app.post(
      '/vulnerability-ignores',
      {
        schema: {
          tags,
          summary: 'Ignore an advisory (by id or alias), optionally for one package and server; audited',
          body: Type.Object(
            {
              advisory: Type.String({ minLength: 1, maxLength: 100, description: 'GHSA-…, PYSEC-…, CVE-…' }),
              package: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 255 }))),
              server: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 64 }))),
              reason: Type.String({ maxLength: 2000, description: 'Required: why it does not apply' }),
              expiresAt: Type.Optional(Nullable(Timestamp)),
            },
            { additionalProperties: false },
          ),
          response: { 201: IgnoreRule, ...problems },
        },
        preHandler: write,
      },
      async (req, reply) => reply.code(201).send(await createIgnore(db, contextOf(req), req.body)),
    );

    app.delete(
      '/vulnerability-ignores/:id',
      {
        schema: {
          tags,
          summary: 'Delete an ignore rule; audited',
          params: IdParams,
          response: { 200: IgnoreRule, ...problems },
        },
        preHandler: write,
      },
      async (req) => deleteIgnore(db, contextOf(req), req.params.id),
    );
  };
}
