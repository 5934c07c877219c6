/**
 * The per-version configuration Pylee stores for an MCP server, in the official MCP registry
 * `server.json` format (schema 2025-09-29, plus remote URL `variables` from 2025-12-11), so users
 * can import a `server.json` and export it again unchanged.
 *
 * Schemas are plain TypeBox definitions without `$id`, so routes can embed them in request and
 * response schemas. `checkVersionConfig` and `fromServerJson` add the rules a JSON schema cannot
 * say (exact versions, http(s) URLs, declared placeholders, header and variable names).
 */
import semver from 'semver';
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { BadRequestError } from '../errors.ts';

/** The `$schema` URL `toServerJson` writes. */
export const SERVER_JSON_SCHEMA_URL =
  'https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json';

/** The package registries Pylee supports. */
export const REGISTRY_TYPES = ['npm', 'pypi', 'oci', 'homebrew', 'nuget'] as const;
export type RegistryType = (typeof REGISTRY_TYPES)[number];

const MAX_URL = 2048;
const MAX_DESCRIPTION = 1000;
const MAX_IDENTIFIER = 255;
const MAX_VALUE = 2048;
const MAX_LIST = 50;
const MAX_INPUTS = 100;
const MAX_META_BYTES = 16_384;

const Description = Type.String({ maxLength: MAX_DESCRIPTION });
const Url = Type.String({ format: 'uri', maxLength: MAX_URL });
/** A URL template: `{name}` placeholders are allowed, so it is checked after substitution, not by `format`. */
const UrlTemplate = Type.String({ minLength: 1, maxLength: MAX_URL });

const inputProperties = {
  description: Type.Optional(Description),
  isRequired: Type.Optional(Type.Boolean()),
  isSecret: Type.Optional(Type.Boolean()),
  default: Type.Optional(Type.String({ maxLength: MAX_VALUE })),
  placeholder: Type.Optional(Type.String({ maxLength: MAX_IDENTIFIER })),
  choices: Type.Optional(Type.Array(Type.String({ maxLength: MAX_IDENTIFIER }), { maxItems: MAX_INPUTS })),
  format: Type.Optional(Type.Enum(['string', 'number', 'boolean', 'filepath'])),
  value: Type.Optional(Type.String({ maxLength: MAX_VALUE })),
};

/** A value a user supplies (or the config fixes): a URL variable, or a variable inside a templated value. */
export const Input = Type.Object(inputProperties, { additionalProperties: false });
export type Input = Static<typeof Input>;

/** `{name}` in a templated value → its definition. */
const Variables = Type.Record(Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER }), Input, {
  maxProperties: MAX_INPUTS,
});

const inputWithVariables = { ...inputProperties, variables: Type.Optional(Variables) };

/** An environment variable (package) or HTTP header (transport, remote). */
export const KeyValueInput = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER }), ...inputWithVariables },
  { additionalProperties: false },
);
export type KeyValueInput = Static<typeof KeyValueInput>;

const Headers = Type.Array(KeyValueInput, { maxItems: MAX_INPUTS });

export const PositionalArgument = Type.Object(
  {
    type: Type.Literal('positional'),
    valueHint: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER })),
    isRepeated: Type.Optional(Type.Boolean()),
    ...inputWithVariables,
  },
  { additionalProperties: false },
);
export const NamedArgument = Type.Object(
  {
    type: Type.Literal('named'),
    name: Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER }),
    isRepeated: Type.Optional(Type.Boolean()),
    ...inputWithVariables,
  },
  { additionalProperties: false },
);
/** A command-line argument for the package's runtime (`docker run …`) or binary. */
export const Argument = Type.Union([PositionalArgument, NamedArgument]);
export type Argument = Static<typeof Argument>;

const Arguments = Type.Array(Argument, { maxItems: MAX_LIST });

export const StdioTransport = Type.Object({ type: Type.Literal('stdio') }, { additionalProperties: false });
export const StreamableHttpTransport = Type.Object(
  { type: Type.Literal('streamable-http'), url: UrlTemplate, headers: Type.Optional(Headers) },
  { additionalProperties: false },
);
export const SseTransport = Type.Object(
  { type: Type.Literal('sse'), url: UrlTemplate, headers: Type.Optional(Headers) },
  { additionalProperties: false },
);
/** How a client talks to a running package. */
export const Transport = Type.Union([StdioTransport, StreamableHttpTransport, SseTransport]);
export type Transport = Static<typeof Transport>;

/** A package a client downloads and runs locally. */
export const Package = Type.Object(
  {
    registryType: Type.Enum([...REGISTRY_TYPES]),
    registryBaseUrl: Type.Optional(Url),
    identifier: Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER }),
    version: Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER }),
    fileSha256: Type.Optional(Type.String({ pattern: '^[a-f0-9]{64}$' })),
    runtimeHint: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER })),
    transport: Transport,
    runtimeArguments: Type.Optional(Arguments),
    packageArguments: Type.Optional(Arguments),
    environmentVariables: Type.Optional(Type.Array(KeyValueInput, { maxItems: MAX_INPUTS })),
  },
  { additionalProperties: false },
);
export type Package = Static<typeof Package>;

/** A hosted endpoint of the server. */
export const Remote = Type.Object(
  {
    type: Type.Enum(['streamable-http', 'sse']),
    url: UrlTemplate,
    headers: Type.Optional(Headers),
    variables: Type.Optional(Variables),
  },
  { additionalProperties: false },
);
export type Remote = Static<typeof Remote>;

export const Repository = Type.Object(
  {
    url: Url,
    source: Type.String({ minLength: 1, maxLength: 100 }),
    id: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER })),
    subfolder: Type.Optional(Type.String({ minLength: 1, maxLength: MAX_DESCRIPTION })),
  },
  { additionalProperties: false },
);
export type Repository = Static<typeof Repository>;

export const Icon = Type.Object(
  {
    src: Type.String({ format: 'uri', maxLength: 255 }),
    mimeType: Type.Optional(
      Type.Enum(['image/png', 'image/jpeg', 'image/jpg', 'image/svg+xml', 'image/webp']),
    ),
    sizes: Type.Optional(Type.Array(Type.String({ pattern: '^(\\d+x\\d+|any)$' }), { maxItems: 20 })),
    theme: Type.Optional(Type.Enum(['light', 'dark'])),
  },
  { additionalProperties: false },
);
export type Icon = Static<typeof Icon>;

const Title = Type.String({ minLength: 1, maxLength: 100 });
const Meta = Type.Record(Type.String(), Type.Unknown());
const Icons = Type.Array(Icon, { maxItems: 20 });

/**
 * The configuration of one server version: server.json without the identity fields (`name`,
 * `description`, `version`, which Pylee keeps on the server and version) and with `_meta` as `meta`.
 * `remotes` and `packages` default to `[]`.
 */
export const VersionConfig = Type.Object(
  {
    title: Type.Optional(Title),
    websiteUrl: Type.Optional(Url),
    repository: Type.Optional(Repository),
    remotes: Type.Array(Remote, { maxItems: MAX_LIST, default: [] }),
    packages: Type.Array(Package, { maxItems: MAX_LIST, default: [] }),
    icons: Type.Optional(Icons),
    meta: Type.Optional(Meta),
  },
  { additionalProperties: false },
);
export type VersionConfig = Static<typeof VersionConfig>;
/** What callers may pass in: `remotes` and `packages` may be left out. */
export type VersionConfigInput = Omit<VersionConfig, 'remotes' | 'packages'> &
  Partial<Pick<VersionConfig, 'remotes' | 'packages'>>;

/** A complete `server.json` document. */
export const ServerJson = Type.Object(
  {
    $schema: Type.Optional(Url),
    name: Type.String({ minLength: 3, maxLength: 200, pattern: '^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$' }),
    description: Type.String({ minLength: 1, maxLength: 100 }),
    version: Type.String({ minLength: 1, maxLength: MAX_IDENTIFIER }),
    title: Type.Optional(Title),
    websiteUrl: Type.Optional(Url),
    repository: Type.Optional(Repository),
    icons: Type.Optional(Icons),
    packages: Type.Optional(Type.Array(Package, { maxItems: MAX_LIST })),
    remotes: Type.Optional(Type.Array(Remote, { maxItems: MAX_LIST })),
    _meta: Type.Optional(Meta),
  },
  { additionalProperties: false },
);
export type ServerJson = Static<typeof ServerJson>;

/** One problem found in a config, addressed by its JSON path (`packages[0].version`). */
export interface ConfigProblem {
  path: string;
  message: string;
}

/** The identity and configuration of one server version, as `fromServerJson` returns it. */
export interface ServerVersionDoc {
  name: string;
  description: string;
  version: string;
  config: VersionConfig;
}

/**
 * Validates a version config against the schema and Pylee's rules and returns it typed, with
 * `remotes` and `packages` defaulted to `[]`. The input is not modified.
 *
 * @throws BadRequestError `invalid-config`, whose detail names the first problem with its path and
 *   how to fix it; `extra.errors` lists every problem found as `{ path, message }`.
 */
export function checkVersionConfig(config: unknown): VersionConfig {
  const value = Value.Default(VersionConfig, withoutUndefined(config));
  const problems = schemaProblems(VersionConfig, value);
  if (problems.length === 0) problems.push(...semanticProblems(value as VersionConfig, 'meta'));
  if (problems.length > 0) throw invalid('config', 'invalid-config', problems);
  return value as VersionConfig;
}

/**
 * Validates a complete `server.json` document and maps it to Pylee's server identity and version
 * config. Unknown properties, `latest` and version ranges are refused.
 *
 * @throws BadRequestError `invalid-server-json`, as {@link checkVersionConfig}.
 */
export function fromServerJson(doc: unknown): ServerVersionDoc {
  const value = withoutUndefined(doc);
  const problems = [...schemaVersionProblems(value), ...schemaProblems(ServerJson, value)];
  if (problems.length === 0) {
    const server = value as ServerJson;
    const why = versionProblem(server.version);
    if (why) problems.push({ path: 'version', message: why });
    problems.push(...semanticProblems(configOf(server), '_meta'));
  }
  if (problems.length > 0) throw invalid('server.json', 'invalid-server-json', problems);
  const server = value as ServerJson;
  return {
    name: server.name,
    description: server.description,
    version: server.version,
    config: configOf(server),
  };
}

/**
 * The `server.json` document for a server version (`$schema` 2025-09-29). Optional fields the
 * config leaves out stay out, empty `packages`/`remotes` are omitted, so
 * `fromServerJson(toServerJson(x))` equals `x`.
 */
export function toServerJson(input: ServerVersionDoc): ServerJson {
  const { config } = input;
  const doc: ServerJson = {
    $schema: SERVER_JSON_SCHEMA_URL,
    name: input.name,
    description: input.description,
    version: input.version,
  };
  if (config.title !== undefined) doc.title = config.title;
  if (config.websiteUrl !== undefined) doc.websiteUrl = config.websiteUrl;
  if (config.repository !== undefined) doc.repository = structuredClone(config.repository);
  if (config.icons !== undefined) doc.icons = structuredClone(config.icons);
  if (config.packages.length > 0) doc.packages = structuredClone(config.packages);
  if (config.remotes.length > 0) doc.remotes = structuredClone(config.remotes);
  if (config.meta !== undefined) doc._meta = structuredClone(config.meta);
  return doc;
}

/** A package a version refers to. */
export interface PackageRef {
  registryType: string;
  identifier: string;
  version: string;
}

/** The distinct packages a config refers to, in order of first appearance ("where is this package used"). */
export function packageRefs(config: VersionConfig): PackageRef[] {
  const seen = new Set<string>();
  const refs: PackageRef[] = [];
  for (const { registryType, identifier, version } of config.packages) {
    const key = JSON.stringify([registryType, identifier, version]);
    if (seen.has(key)) continue;
    seen.add(key);
    refs.push({ registryType, identifier, version });
  }
  return refs;
}

/** An input a running version needs a value for. */
export interface DeclaredInput {
  /** The environment variable, header or URL variable name; the key in `applyValues`' values. */
  name: string;
  isRequired: boolean;
  isSecret: boolean;
  default?: string;
  /** Which package or remote asks for it: `packages[0] npm:@acme/weather`, `remotes[1] https://{host}/mcp`. */
  where: string;
}

/**
 * Every input a running version needs a value for: each package's environment variables and
 * transport headers, each remote's URL variables and headers, and the `variables` of fixed
 * templated values (`"value": "Bearer {token}"`). An input with a fixed `value` needs none and is
 * skipped. Names repeat when several packages or remotes ask for the same one. Command-line
 * arguments are not listed.
 */
export function declaredInputs(config: VersionConfig): DeclaredInput[] {
  const inputs: DeclaredInput[] = [];
  const declare = (name: string, input: Input, where: string) => {
    if (input.value !== undefined) return;
    const declared: DeclaredInput = {
      name,
      isRequired: input.isRequired ?? false,
      isSecret: input.isSecret ?? false,
      where,
    };
    if (input.default !== undefined) declared.default = input.default;
    inputs.push(declared);
  };
  const declareKeyValue = (kv: KeyValueInput, where: string) => {
    if (kv.value === undefined) return declare(kv.name, kv, where);
    for (const name of placeholders(kv.value)) {
      const variable = kv.variables?.[name];
      if (variable) declare(name, variable, where);
    }
  };
  config.packages.forEach((pkg, i) => {
    const where = `packages[${i}] ${pkg.registryType}:${pkg.identifier}`;
    for (const env of pkg.environmentVariables ?? []) declareKeyValue(env, where);
    if (pkg.transport.type !== 'stdio')
      for (const h of pkg.transport.headers ?? []) declareKeyValue(h, where);
  });
  config.remotes.forEach((remote, i) => {
    const where = `remotes[${i}] ${remote.url}`;
    for (const [name, variable] of Object.entries(remote.variables ?? {})) declare(name, variable, where);
    for (const h of remote.headers ?? []) declareKeyValue(h, where);
  });
  return inputs;
}

/**
 * A copy of `config` with values filled in, for running or checking a version: `{name}`
 * placeholders in remote and transport URLs and in fixed header / environment variable values are
 * replaced, and headers and environment variables without a fixed value get `values[name]`. Where
 * `values` has nothing, a declared variable's fixed `value` or `default` is used (a transport URL
 * may also use the package's environment variables); unknown placeholders stay as they are.
 * The input is not modified.
 */
export function applyValues(config: VersionConfig, values: Record<string, string>): VersionConfig {
  const copy = structuredClone(config);
  const given = (name: string) => (Object.hasOwn(values, name) ? values[name] : undefined);
  const resolve = (name: string, variable: Input | undefined) =>
    variable?.value ?? given(name) ?? variable?.default;
  const fill = (kv: KeyValueInput) => {
    if (kv.value !== undefined)
      kv.value = substitute(kv.value, (name) => resolve(name, kv.variables?.[name]));
    else {
      const value = given(kv.name) ?? kv.default;
      if (value !== undefined) kv.value = value;
    }
  };
  for (const pkg of copy.packages) {
    const env = new Map<string, string>();
    for (const variable of pkg.environmentVariables ?? []) {
      fill(variable);
      if (variable.value !== undefined) env.set(variable.name, variable.value);
    }
    const transport = pkg.transport;
    if (transport.type !== 'stdio') {
      transport.url = substitute(transport.url, (name) => given(name) ?? env.get(name));
      for (const h of transport.headers ?? []) fill(h);
    }
  }
  for (const remote of copy.remotes) {
    remote.url = substitute(remote.url, (name) => resolve(name, remote.variables?.[name]));
    for (const h of remote.headers ?? []) fill(h);
  }
  return copy;
}

// ---------------------------------------------------------------------------------------------
// Rules a JSON schema cannot express

const PLACEHOLDER = /\{([^{}\s]+)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** RFC 7230 `token`. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FLOATING_TAGS = new Set(['latest', 'stable', 'edge', 'nightly', 'next', 'main', 'master', 'head']);

function placeholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}

function substitute(template: string, resolve: (name: string) => string | undefined): string {
  return template.replace(PLACEHOLDER, (match, name: string) => resolve(name) ?? match);
}

/**
 * Why `version` is not one exact version (`latest`, a range, a wildcard), or undefined. Only npm
 * versions must be semver: PyPI (PEP 440: 1.0.0rc1), OCI tags (2024.05.01) and Homebrew differ.
 */
export function versionProblem(version: string, registryType?: RegistryType): string | undefined {
  const shown = JSON.stringify(version);
  const fix = `pin the version you tested, e.g. ${exampleFor(version)}`;
  if (version.trim() === '') return `must not be empty: ${fix}`;
  if (version.toLowerCase() === 'latest') return `${shown} is not an exact version: ${fix}`;
  if (FLOATING_TAGS.has(version.toLowerCase()))
    return `${shown} is a moving tag, not an exact version: ${fix}`;
  const core = (version.split(/[-+]/)[0] ?? '').split('.');
  if (
    /^[\^~<>=!]/.test(version) ||
    /[*,|[\]()]|\s/.test(version) ||
    core.some((part) => part === 'x' || part === 'X')
  ) {
    return `${shown} is a version range, not an exact version: ${fix}`;
  }
  if (registryType === 'npm' && semver.valid(version) !== version) {
    return `${shown} is not an exact npm version: npm versions are MAJOR.MINOR.PATCH[-pre], e.g. ${exampleFor(version)}`;
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._+!:-]*$/.test(version)) {
    return `${shown} has characters a version cannot have: ${fix}`;
  }
  return undefined;
}

function exampleFor(version: string): string {
  const stripped = version.replace(/^[\s^~<>=!v]+/, '').split(/[\s,|]/)[0] ?? '';
  return semver.valid(stripped) === stripped ? stripped : '1.4.2';
}

/** Why `url` is not an http(s) URL (after `{placeholders}` are filled in), or undefined. */
function urlProblem(url: string, httpsOnly = false): string | undefined {
  const shown = JSON.stringify(url);
  let parsed: URL;
  try {
    parsed = new URL(url.replace(PLACEHOLDER, '1'));
  } catch {
    if (!/^[a-z][a-z0-9+.-]*:/i.test(url)) {
      return `${shown} is not a URL: write it with its scheme, e.g. https://${url.replace(/^\/+/, '') || 'example.com'}`;
    }
    return `${shown} is not a valid URL: check it for typos, e.g. https://example.com/mcp`;
  }
  const scheme = parsed.protocol.slice(0, -1);
  if (httpsOnly && scheme !== 'https')
    return `${shown} must be an https URL, e.g. https://example.com/icon.png`;
  if (scheme !== 'http' && scheme !== 'https') return `${shown} must be an http or https URL, not ${scheme}`;
  if (parsed.username || parsed.password) {
    return `${shown} must not contain credentials: declare a header (e.g. Authorization) for them instead`;
  }
  return undefined;
}

function semanticProblems(config: VersionConfig, metaKey: 'meta' | '_meta'): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const add = (path: string, message: string | undefined) => {
    if (message) problems.push({ path, message });
  };

  if (config.websiteUrl !== undefined) add('websiteUrl', urlProblem(config.websiteUrl));
  if (config.repository) {
    add('repository.url', urlProblem(config.repository.url));
    const subfolder = config.repository.subfolder;
    if (subfolder !== undefined && !isCleanRelativePath(subfolder)) {
      add(
        'repository.subfolder',
        `${JSON.stringify(subfolder)} must be a clean relative path from the repository root, e.g. src/weather`,
      );
    }
  }
  config.icons?.forEach((icon, i) => add(`icons[${i}].src`, urlProblem(icon.src, true)));

  config.packages.forEach((pkg, i) => {
    const at = `packages[${i}]`;
    if (/\s/.test(pkg.identifier)) {
      add(`${at}.identifier`, `${JSON.stringify(pkg.identifier)} must not contain whitespace`);
    } else if (pkg.registryType === 'oci' && /^[a-z][a-z0-9+.-]*:\/\//i.test(pkg.identifier)) {
      add(
        `${at}.identifier`,
        `${JSON.stringify(pkg.identifier)} is a URL, not an image reference: drop the scheme, e.g. ${pkg.identifier.replace(/^[^:]+:\/\//, '')}`,
      );
    }
    add(`${at}.version`, versionProblem(pkg.version, pkg.registryType));
    if (pkg.registryBaseUrl !== undefined) add(`${at}.registryBaseUrl`, urlProblem(pkg.registryBaseUrl));
    if (pkg.transport.type !== 'stdio') {
      add(`${at}.transport.url`, urlProblem(pkg.transport.url));
      checkHeaders(problems, `${at}.transport.headers`, pkg.transport.headers);
    }
    for (const key of ['runtimeArguments', 'packageArguments'] as const) {
      pkg[key]?.forEach((arg, j) => {
        const argAt = `${at}.${key}[${j}]`;
        if (arg.type === 'positional' && arg.valueHint === undefined && arg.value === undefined) {
          add(argAt, 'needs a valueHint (a label for the value, e.g. config_path) or a fixed value');
        }
        if (arg.type === 'named' && /\s/.test(arg.name)) {
          add(
            `${argAt}.name`,
            `${JSON.stringify(arg.name)} must be one flag without whitespace, e.g. --port`,
          );
        }
        checkInput(problems, argAt, arg);
        checkVariables(problems, `${argAt}.variables`, arg.variables);
      });
    }
    const seen = new Set<string>();
    pkg.environmentVariables?.forEach((env, j) => {
      const envAt = `${at}.environmentVariables[${j}]`;
      if (!ENV_NAME.test(env.name)) {
        add(
          `${envAt}.name`,
          `${JSON.stringify(env.name)} is not an environment variable name: use letters, digits and _, not starting with a digit, e.g. API_KEY`,
        );
      } else if (seen.has(env.name)) {
        add(
          `${envAt}.name`,
          `${JSON.stringify(env.name)} is declared twice in this package: keep one of them`,
        );
      }
      seen.add(env.name);
      checkInput(problems, envAt, env);
      checkVariables(problems, `${envAt}.variables`, env.variables);
    });
  });

  config.remotes.forEach((remote, i) => {
    const at = `remotes[${i}]`;
    const why = urlProblem(remote.url);
    add(`${at}.url`, why);
    if (!why) {
      const undeclared = placeholders(remote.url).filter(
        (name) => !Object.hasOwn(remote.variables ?? {}, name),
      );
      if (undeclared.length > 0) {
        const name = undeclared[0] as string;
        add(
          `${at}.url`,
          `uses {${name}} but ${at}.variables does not declare it: add "variables": { "${name}": { "description": "…", "isRequired": true } }`,
        );
      }
    }
    checkHeaders(problems, `${at}.headers`, remote.headers);
    checkVariables(problems, `${at}.variables`, remote.variables);
  });

  if (config.meta !== undefined && Buffer.byteLength(JSON.stringify(config.meta)) > MAX_META_BYTES) {
    add(metaKey, `is larger than ${MAX_META_BYTES / 1024} KiB: keep only what downstream registries need`);
  }
  return problems;
}

function checkHeaders(problems: ConfigProblem[], at: string, headers: KeyValueInput[] | undefined) {
  const seen = new Set<string>();
  headers?.forEach((header, i) => {
    const headerAt = `${at}[${i}]`;
    if (!HEADER_NAME.test(header.name)) {
      problems.push({
        path: `${headerAt}.name`,
        message: `${JSON.stringify(header.name)} is not an HTTP header name: use letters, digits and - (no spaces or colons), e.g. X-API-Key`,
      });
    } else if (seen.has(header.name.toLowerCase())) {
      problems.push({
        path: `${headerAt}.name`,
        message: `${JSON.stringify(header.name)} is declared twice (header names ignore case): keep one of them`,
      });
    }
    seen.add(header.name.toLowerCase());
    checkInput(problems, headerAt, header);
    checkVariables(problems, `${headerAt}.variables`, header.variables);
  });
}

function checkVariables(problems: ConfigProblem[], at: string, variables: Record<string, Input> | undefined) {
  for (const [name, variable] of Object.entries(variables ?? {})) {
    const variableAt = `${at}${pathSegment(name)}`;
    if (name === '' || /[{}\s]/.test(name)) {
      problems.push({
        path: variableAt,
        message: `${JSON.stringify(name)} is not a variable name: use the text between the braces, e.g. tenant_id for {tenant_id}`,
      });
    }
    checkInput(problems, variableAt, variable);
  }
}

function checkInput(problems: ConfigProblem[], at: string, input: Input) {
  if (input.choices !== undefined && input.choices.length === 0) {
    problems.push({ path: `${at}.choices`, message: 'is empty: list the allowed values, or remove choices' });
  } else if (
    input.choices !== undefined &&
    input.default !== undefined &&
    !input.choices.includes(input.default)
  ) {
    problems.push({
      path: `${at}.default`,
      message: `${JSON.stringify(input.default)} is not one of the choices (${input.choices.join(', ')}): pick one of them`,
    });
  }
  if (input.default !== undefined && input.format === 'number' && !/^-?\d+(\.\d+)?$/.test(input.default)) {
    problems.push({
      path: `${at}.default`,
      message: `${JSON.stringify(input.default)} is not a decimal number`,
    });
  }
  if (
    input.default !== undefined &&
    input.format === 'boolean' &&
    !['true', 'false'].includes(input.default)
  ) {
    problems.push({
      path: `${at}.default`,
      message: `${JSON.stringify(input.default)} must be "true" or "false"`,
    });
  }
}

function isCleanRelativePath(path: string): boolean {
  if (path.startsWith('/') || path.includes('\\')) return false;
  return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

function configOf(server: ServerJson): VersionConfig {
  const config: VersionConfig = { remotes: server.remotes ?? [], packages: server.packages ?? [] };
  if (server.title !== undefined) config.title = server.title;
  if (server.websiteUrl !== undefined) config.websiteUrl = server.websiteUrl;
  if (server.repository !== undefined) config.repository = server.repository;
  if (server.icons !== undefined) config.icons = server.icons;
  if (server._meta !== undefined) config.meta = server._meta;
  return config;
}

/** Older server.json formats fail the schema on renamed fields; say so once instead. */
function schemaVersionProblems(doc: unknown): ConfigProblem[] {
  if (!isRecord(doc) || typeof doc.$schema !== 'string') return [];
  const old = /\/(2025-07-09|2025-09-16)\//.exec(doc.$schema);
  if (!old) return [];
  return [
    {
      path: '$schema',
      message: `is the ${old[1]} server.json format: update to ${SERVER_JSON_SCHEMA_URL} (camelCase field names, no status field)`,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Schema errors in words a person can act on

interface SchemaError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

const REQUIRED_HINTS: Record<string, string> = {
  transport: 'add "transport": { "type": "stdio" } for a package that runs as a local process',
  version: 'pin the exact version, e.g. 1.4.2',
  identifier: 'give the package name, e.g. @acme/weather-mcp',
  registryType: `use one of ${REGISTRY_TYPES.join(', ')}`,
  url: 'give the endpoint, e.g. https://mcp.example.com/mcp',
  source: 'name the hosting service, e.g. github',
  src: 'give the https URL of the image',
};

/** A hint for a missing property whose meaning depends on where it is missing. */
function requiredHint(parent: string, missing: string): string | undefined {
  if (missing === 'type') {
    if (parent.endsWith('/transport')) return 'use one of stdio, streamable-http, sse';
    if (/Arguments\/\d+$/.test(parent)) return 'use positional or named';
    if (/^\/remotes\/\d+$/.test(parent)) return 'use streamable-http or sse';
  }
  if (missing === 'name') {
    if (/Arguments\/\d+$/.test(parent)) return 'give the flag with its dashes, e.g. --port';
    if (/environmentVariables\/\d+$/.test(parent)) return 'give the variable name, e.g. API_KEY';
    if (/headers\/\d+$/.test(parent)) return 'give the header name, e.g. X-API-Key';
  }
  return REQUIRED_HINTS[missing];
}

const RENAMED: Record<string, string> = {
  status: 'is managed by the registry since server.json 2025-09-29: remove it',
  version_detail: 'was replaced by a top-level "version" in server.json 2025-09-16',
  transport_type: 'was renamed "type" in server.json 2025-09-16',
  _meta: 'is called "meta" in a Pylee version config',
};

const within = (path: string, prefix: string) => path === prefix || path.startsWith(`${prefix}/`);

function schemaProblems(schema: TSchema, value: unknown): ConfigProblem[] {
  const errors = (Value.Errors(schema, value) as SchemaError[]).filter((e) => e.keyword !== 'boolean');
  // A union branch whose `type` does not match the value's is not what the author meant: drop its errors.
  const rejected: { instance: string; branch: string; allowed: unknown }[] = [];
  for (const e of errors) {
    const branch = /^(.*\/anyOf\/\d+)\/properties\/type$/.exec(e.schemaPath)?.[1];
    if (e.keyword === 'const' && branch && e.instancePath.endsWith('/type')) {
      rejected.push({
        instance: e.instancePath.slice(0, -'/type'.length),
        branch,
        allowed: e.params.allowedValue,
      });
    }
  }
  const kept = errors.filter(
    (e) => !rejected.some((r) => within(e.schemaPath, r.branch) && within(e.instancePath, r.instance)),
  );
  const problems: ConfigProblem[] = [];
  for (const e of kept) {
    if (e.keyword !== 'anyOf') {
      problems.push(...describeError(e, schema, value));
      continue;
    }
    const explained = kept.some(
      (o) =>
        o.keyword !== 'anyOf' && within(o.instancePath, e.instancePath) && within(o.schemaPath, e.schemaPath),
    );
    if (explained) continue;
    const allowed = rejected
      .filter((r) => r.instance === e.instancePath && within(r.branch, e.schemaPath))
      .map((r) => String(r.allowed));
    const path = toPath(e.instancePath);
    if (allowed.length > 0) {
      const type = JSON.stringify(valueAt(value, `${e.instancePath}/type`));
      problems.push({
        path: joinPath(path, 'type'),
        message: `${type} is not supported: use one of ${allowed.join(', ')}`,
      });
    } else {
      problems.push({ path, message: 'does not match any of the allowed shapes' });
    }
  }
  const unique = new Map(problems.map((p) => [`${p.path}\n${p.message}`, p]));
  return [...unique.values()];
}

function describeError(e: SchemaError, schema: TSchema, root: unknown): ConfigProblem[] {
  const path = toPath(e.instancePath);
  const value = valueAt(root, e.instancePath);
  const key = e.instancePath.split('/').pop() ?? '';
  const at = (message: string) => [{ path, message }];
  switch (e.keyword) {
    case 'required': {
      const missing = String((e.params.requiredProperties as string[])[0]);
      const hint = requiredHint(e.instancePath, missing);
      return [{ path: joinPath(path, missing), message: hint ? `is required: ${hint}` : 'is required' }];
    }
    case 'additionalProperties': {
      const known = Object.keys((schemaAt(schema, e.schemaPath)?.properties as object | undefined) ?? {});
      return (e.params.additionalProperties as string[]).map((name) => ({
        path: joinPath(path, name),
        message: unknownPropertyMessage(name, known),
      }));
    }
    case 'type':
      return at(`must be ${article(String(e.params.type))}`);
    case 'const':
      return at(`must be ${JSON.stringify(e.params.allowedValue)}`);
    case 'enum': {
      const allowed = (e.params.allowedValues as unknown[]).map(String).join(', ');
      if (key === 'registryType') {
        return at(`${JSON.stringify(value)} is not a registry Pylee supports: use one of ${allowed}`);
      }
      return at(`${JSON.stringify(value)} is not allowed: use one of ${allowed}`);
    }
    case 'maxLength':
      return at(`is longer than ${String(e.params.limit)} characters: shorten it`);
    case 'minLength':
      return at(
        e.params.limit === 1 ? 'must not be empty' : `must be at least ${String(e.params.limit)} characters`,
      );
    case 'maxItems':
      return at(`has more than ${String(e.params.limit)} entries: keep at most ${String(e.params.limit)}`);
    case 'maxProperties':
      return at(`has more than ${String(e.params.limit)} entries: keep at most ${String(e.params.limit)}`);
    case 'format': {
      const why = typeof value === 'string' && e.params.format === 'uri' ? urlProblem(value) : undefined;
      return at(why ?? `${JSON.stringify(value)} is not a valid ${String(e.params.format)}`);
    }
    case 'pattern':
      return at(patternMessage(key, e.instancePath, value));
    default:
      return at(e.message);
  }
}

function patternMessage(key: string, instancePath: string, value: unknown): string {
  const shown = JSON.stringify(value);
  if (key === 'fileSha256') return `${shown} is not a SHA-256 digest: give its 64 lowercase hex characters`;
  if (instancePath === '/name') {
    return `${shown} is not a reverse-DNS server name: use namespace/name, e.g. io.github.acme/weather`;
  }
  if (/\/sizes\/\d+$/.test(instancePath)) return `${shown} is not an icon size: use WxH (e.g. 48x48) or any`;
  return `${shown} does not have the expected format`;
}

function unknownPropertyMessage(name: string, known: string[]): string {
  const renamed = RENAMED[name];
  if (renamed) return renamed;
  const camel = name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  if (camel !== name && known.includes(camel)) {
    return `is not a known property: server.json uses camelCase, rename it to ${camel}`;
  }
  return `is not a known property: remove it${known.length > 0 ? ` (known: ${known.join(', ')})` : ''}`;
}

function article(type: string): string {
  return `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}

function invalid(root: string, code: string, problems: ConfigProblem[]): BadRequestError {
  const [first] = problems as [ConfigProblem, ...ConfigProblem[]];
  const more = problems.length - 1;
  const detail =
    `${first.path || root} ${first.message}` +
    (more > 0 ? ` (and ${more} more problem${more === 1 ? '' : 's'}, listed in errors)` : '');
  return new BadRequestError(detail, code, { errors: problems });
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '' || pointer === '#') return [];
  return pointer
    .replace(/^#/, '')
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function valueAt(root: unknown, pointer: string): unknown {
  let current = root;
  for (const segment of pointerSegments(pointer)) {
    if (!isRecord(current) && !Array.isArray(current)) return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}

function schemaAt(schema: TSchema, pointer: string): Record<string, unknown> | undefined {
  const found = valueAt(schema, pointer);
  return isRecord(found) ? found : undefined;
}

/** `/packages/0/version` → `packages[0].version`; keys that are not identifiers as `["a.b"]`. */
function toPath(pointer: string): string {
  return pointerSegments(pointer).reduce((path, segment) => joinPath(path, segment), '');
}

function joinPath(path: string, segment: string): string {
  if (/^\d+$/.test(segment)) return `${path}[${segment}]`;
  const next = pathSegment(segment);
  return path === '' && next.startsWith('.') ? next.slice(1) : `${path}${next}`;
}

function pathSegment(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A deep copy without `undefined` properties, which JSON cannot carry and a stored config must not have. */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (!isRecord(value) || Object.getPrototypeOf(value) !== Object.prototype) return Value.Clone(value);
  const copy: Record<string, unknown> = {};
  for (const [key, item] of Object.entries(value)) if (item !== undefined) copy[key] = withoutUndefined(item);
  return copy;
}
