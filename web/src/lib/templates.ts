// Server templates: the /templates pages and the server page's "from template" line.
import { request, seg } from './api';

export interface TemplateSummary {
  slug: string;
  fullName: string;
  name: string;
  description: string;
  owners: string[];
  latest: string | null;
  versionCount: number;
  servers: number;
  behind: number;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

export interface TemplateVersion {
  template: string;
  ref: string;
  version: string;
  status: string;
  prerelease: boolean;
  releaseNotes: string;
  config: {
    title?: string;
    remotes?: { type: string; url: string }[];
    packages?: { registryType: string; identifier: string; version: string }[];
    [key: string]: unknown;
  };
  variables: { name: string; description: string; default: string }[];
  secrets: { name: string; description: string }[];
  deprecation: { date: string; message: string } | null;
  servers: number;
  createdBy: string;
  createdAt: string;
}

export interface TemplateDetail extends TemplateSummary {
  versions: TemplateVersion[];
}

export interface TemplateUsage {
  template: string;
  latest: string | null;
  servers: {
    server: string;
    follows: string;
    ref: string;
    behind: boolean;
    versions: { version: string; status: string; template: string }[];
    missingSecrets: string[];
  }[];
}

/** What GET /servers/:server says of the template a server follows. */
export interface ServerTemplate {
  ref: string;
  latest: string | null;
  behind: boolean;
  missingSecrets: string[];
}

export const templatesApi = {
  list: async () => (await request<{ templates: TemplateSummary[] }>('GET', '/templates')).templates,
  get: (slug: string) => request<TemplateDetail>('GET', `/templates/${seg(slug)}`),
  usage: (slug: string) => request<TemplateUsage>('GET', `/templates/${seg(slug)}/usage`),
};

/** `@org/slug@1.0.0` → `slug`, for links to the template's page. */
export const templateSlug = (ref: string) => ref.replace(/^@[^/]+\//, '').replace(/@.*$/, '');
