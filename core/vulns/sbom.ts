/**
 * SBOMs for OCI images: a CycloneDX or SPDX JSON document attached to a version's image, whose
 * components (by purl) are scanned in the image's place. A document that is neither is refused
 * with the JSON path of its first problem.
 */
import { appendAudit } from '../audit/log.ts';
import { assertPermission, type Context } from '../auth/principal.ts';
import type { Db } from '../db/client.ts';
import { BadRequestError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import { findVersion } from '../registry/versions.ts';
import { isEcosystem, type Ecosystem } from './ecosystems.ts';
import { scanIn } from './scan.ts';

export interface SbomComponent {
  ecosystem: Ecosystem;
  name: string;
  version: string;
  purl: string;
}

export interface ParsedSbom {
  format: 'cyclonedx' | 'spdx';
  components: SbomComponent[];
  other: number;
}

const CYCLONEDX_FIELDS = new Set([
  '$schema',
  'bomFormat',
  'specVersion',
  'serialNumber',
  'version',
  'metadata',
  'components',
  'services',
  'externalReferences',
  'dependencies',
  'compositions',
  'properties',
  'vulnerabilities',
  'annotations',
  'formulation',
  'declarations',
  'definitions',
  'signature',
]);

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const bad = (path: string, problem: string): never => {
  throw new BadRequestError(`SBOM ${path} ${problem}`, 'invalid-sbom', { path });
};

/** `pkg:npm/%40scope/name@1.0.0` → { type, name, version }; undefined when it is not a purl with a version. */
export function parsePurl(purl: string): { type: string; name: string; version: string } | undefined {
  const m = /^pkg:([a-zA-Z][a-zA-Z0-9.+-]*)\/([^@?#]+)@([^?#]+)/.exec(purl);
  if (!m) return undefined;
  const type = (m[1] as string).toLowerCase();
  const segments = (m[2] as string).split('/').filter(Boolean).map(decodeURIComponent);
  return { type, name: segments.join('/'), version: decodeURIComponent(m[3] as string) };
}

function component(purl: string): SbomComponent | undefined {
  const parsed = parsePurl(purl);
  if (!parsed || !isEcosystem(parsed.type)) return undefined;
  return { ecosystem: parsed.type, name: parsed.name, version: parsed.version, purl };
}

/** Reads a CycloneDX (`bomFormat`) or SPDX (`spdxVersion`) JSON document. */
export function parseSbom(doc: unknown): ParsedSbom {
  if (!isObject(doc)) return bad('the document', 'is not a JSON object');
  const components: SbomComponent[] = [];
  let other = 0;
  const add = (purl: string) => {
    const c = component(purl);
    if (c) components.push(c);
    else other++;
  };
  if (doc.bomFormat !== undefined) {
    if (doc.bomFormat !== 'CycloneDX')
      bad('bomFormat', `must be "CycloneDX", got ${JSON.stringify(doc.bomFormat)}`);
    if (typeof doc.specVersion !== 'string') bad('specVersion', 'must be a string such as "1.5"');
    // The CycloneDX JSON schema allows no other top-level fields.
    const unknown = Object.keys(doc).filter((k) => !CYCLONEDX_FIELDS.has(k));
    if (unknown.length) {
      throw new BadRequestError(`SBOM ${unknown[0]} is not a CycloneDX field`, 'invalid-sbom', {
        path: unknown[0],
        errors: unknown.map((property) => ({
          in: 'body',
          path: '/',
          message: 'not a CycloneDX field',
          property,
        })),
      });
    }
    const walk = (list: unknown, path: string) => {
      if (list === undefined) return;
      if (!Array.isArray(list)) bad(path, 'must be an array');
      (list as unknown[]).forEach((c, i) => {
        const at = `${path}[${i}]`;
        if (!isObject(c)) bad(at, 'must be an object');
        const item = c as Record<string, unknown>;
        if (item.purl !== undefined && typeof item.purl !== 'string') bad(`${at}.purl`, 'must be a string');
        if (typeof item.purl === 'string') add(item.purl);
        walk(item.components, `${at}.components`);
      });
    };
    walk(doc.components, 'components');
    return { format: 'cyclonedx', components, other };
  }
  if (doc.spdxVersion !== undefined) {
    if (typeof doc.spdxVersion !== 'string' || !doc.spdxVersion.startsWith('SPDX-')) {
      bad('spdxVersion', 'must be a string such as "SPDX-2.3"');
    }
    if (doc.packages !== undefined && !Array.isArray(doc.packages)) bad('packages', 'must be an array');
    ((doc.packages as unknown[] | undefined) ?? []).forEach((p, i) => {
      const at = `packages[${i}]`;
      if (!isObject(p)) bad(at, 'must be an object');
      const refs = (p as Record<string, unknown>).externalRefs;
      if (refs === undefined) return;
      if (!Array.isArray(refs)) bad(`${at}.externalRefs`, 'must be an array');
      (refs as unknown[]).forEach((r, j) => {
        if (!isObject(r)) bad(`${at}.externalRefs[${j}]`, 'must be an object');
        const ref = r as Record<string, unknown>;
        if (ref.referenceType !== 'purl') return;
        if (typeof ref.referenceLocator !== 'string')
          bad(`${at}.externalRefs[${j}].referenceLocator`, 'must be a string');
        add(ref.referenceLocator as string);
      });
    });
    return { format: 'spdx', components, other };
  }
  const fields = Object.keys(doc);
  const message = 'is neither CycloneDX JSON (bomFormat) nor SPDX JSON (spdxVersion)';
  throw new BadRequestError(
    `SBOM the document ${message}${fields.length ? `; its top-level fields are ${fields.join(', ')}` : ''}`,
    'invalid-sbom',
    { path: '/', errors: [{ in: 'body', path: '/', message, properties: fields }] },
  );
}

export interface AttachedSbom {
  image: string;
  format: 'cyclonedx' | 'spdx';
  components: number;
  otherComponents: number;
}

/**
 * Attaches an SBOM to one of the version's OCI packages (`image` may be left out when it has one)
 * and scans the version again. Audited.
 */
export async function attachSbom(
  db: Db,
  ctx: Context,
  serverSlug: string,
  version: string,
  doc: unknown,
  image?: string,
): Promise<AttachedSbom> {
  assertPermission(ctx.principal, 'write');
  const sbom = parseSbom(doc);
  return db.transaction(async (tx) => {
    const server = await findServer(tx, ctx.principal, serverSlug);
    const row = await findVersion(tx, server, version);
    const images = (row.config.packages ?? [])
      .filter((p) => p.registryType === 'oci')
      .map((p) => p.identifier);
    if (images.length === 0) {
      throw new BadRequestError(
        `${serverSlug}@${version} has no OCI package to attach an SBOM to`,
        'no-oci-package',
      );
    }
    const target = image ?? (images.length === 1 ? images[0] : undefined);
    if (!target || !images.includes(target)) {
      throw new BadRequestError(
        `${image ? `image ${image} is not an OCI package of ${serverSlug}@${version}` : 'the version has several OCI packages'}; name one with image: ${images.join(', ')}`,
        'invalid-image',
      );
    }
    await tx.query(
      `INSERT INTO version_sboms (version_id, org_id, image, format, components, other_components, uploaded_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (version_id, image) DO UPDATE SET format = excluded.format, components = excluded.components,
         other_components = excluded.other_components, uploaded_by = excluded.uploaded_by, uploaded_at = now()`,
      [
        row.id,
        ctx.principal.orgId,
        target,
        sbom.format,
        JSON.stringify(sbom.components),
        sbom.other,
        ctx.principal.tokenName,
      ],
    );
    const result = {
      image: target,
      format: sbom.format,
      components: sbom.components.length,
      otherComponents: sbom.other,
    };
    await appendAudit(tx, ctx, {
      action: 'version.sbom-attach',
      target: { type: 'version', id: row.id, name: `${serverSlug}@${version}` },
      after: result,
    });
    await scanIn(tx, [row.id]);
    return result;
  });
}
