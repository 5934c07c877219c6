// The shared packages catalogue: types and calls (kept apart from api.ts, which other features edit).
import { request, seg } from './api';

export const REGISTRY_TYPES = ['npm', 'pypi', 'oci', 'homebrew', 'nuget'] as const;

/** What each ecosystem's ranges look like, for placeholders. */
export const RANGE_EXAMPLES: Record<string, string> = {
  npm: '^2.1.0',
  pypi: '>=2.31,<3',
  oci: '1.4.*, 1.5.0',
  homebrew: '3.2.*',
  nuget: '13.0.*',
};

export interface PackageDeprecation {
  versions: string;
  message: string;
  replacement: string | null;
}

export interface PackageUsage {
  servers: number;
  versions: number;
  notAllowed: number;
  deprecated: number;
}

export interface PackageEntry {
  registryType: string;
  identifier: string;
  description: string;
  owners: string[];
  allowed: string | null;
  deprecations: PackageDeprecation[];
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

export interface CataloguedPackage extends PackageEntry {
  usage: PackageUsage;
}

export interface UncataloguedPackage {
  registryType: string;
  identifier: string;
  usage: { servers: number; versions: number };
  packageVersions: string[];
}

export interface PackageUse {
  server: string;
  version: string;
  status: string;
  identifier: string;
  packageVersion: string;
  allowed: boolean;
  deprecated: boolean;
  deprecation: PackageDeprecation | null;
}

export interface PackageDetail {
  registryType: string;
  identifier: string;
  entry: PackageEntry | null;
  uses: PackageUse[];
  summary: {
    packageVersion: string;
    servers: number;
    versions: number;
    allowed: boolean;
    deprecated: boolean;
  }[];
  usage: PackageUsage;
}

export interface PackageInput {
  description?: string;
  owners?: string[];
  allowed?: string | null;
  deprecations?: PackageDeprecation[];
}

const apiPath = (registryType: string, identifier: string) =>
  `/packages/${seg(registryType)}/${seg(identifier)}`;

/** The UI's page of a package: the identifier's slashes stay (the route takes the rest of the path). */
export const packageHref = (registryType: string, identifier: string) =>
  `/packages/${seg(registryType)}/${identifier.split('/').map(seg).join('/')}`;

export const packagesApi = {
  list: (q: { registryType?: string; q?: string } = {}) =>
    request<{ packages: CataloguedPackage[]; uncatalogued: UncataloguedPackage[] }>('GET', '/packages', {
      query: q,
    }),
  detail: (registryType: string, identifier: string) =>
    request<PackageDetail>('GET', apiPath(registryType, identifier)),
  put: (registryType: string, identifier: string, body: PackageInput) =>
    request<CataloguedPackage>('PUT', apiPath(registryType, identifier), { body }),
  remove: (registryType: string, identifier: string) =>
    request<void>('DELETE', apiPath(registryType, identifier)),
};

/** "platform-team, sdk@acme.io" → the owners list. */
export const parseOwners = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
