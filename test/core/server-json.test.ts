import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BadRequestError } from '#core/errors.ts';
import {
  applyValues,
  checkVersionConfig,
  declaredInputs,
  fromServerJson,
  packageRefs,
  SERVER_JSON_SCHEMA_URL,
  toServerJson,
  type Package,
  type VersionConfig,
} from '#core/registry/server-json.ts';

const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/server-json', `${name}.json`), 'utf8'));

/** The BadRequestError `fn` throws, so a test can assert its code, detail and paths. */
function rejection(
  fn: () => unknown,
): BadRequestError & { extra: { errors: { path: string; message: string }[] } } {
  try {
    fn();
  } catch (error) {
    if (error instanceof BadRequestError) return error as ReturnType<typeof rejection>;
    throw error;
  }
  throw new Error('expected a BadRequestError');
}

const paths = (error: ReturnType<typeof rejection>) => error.extra.errors.map((e) => e.path);

function npm(overrides: Partial<Package> = {}): Package {
  return {
    registryType: 'npm',
    identifier: '@acme/weather',
    version: '1.4.2',
    transport: { type: 'stdio' },
    ...overrides,
  } as Package;
}

const withPackage = (pkg: Partial<Package>) => ({ packages: [npm(pkg)] });

describe('server.json import and export', () => {
  it.each(['minimal', 'with-package', 'with-remote'])(
    'imports the official %s example and exports it unchanged',
    (name) => {
      const doc = fixture(name);
      const imported = fromServerJson(doc);
      expect(imported.name).toBe(doc.name);
      expect(imported.version).toBe(doc.version);
      expect(toServerJson(imported)).toEqual(doc);
      expect(JSON.stringify(toServerJson(imported))).not.toMatch(/null|undefined/);
    },
  );

  it('maps a package example to a version config with remotes defaulted to []', () => {
    const { config } = fromServerJson(fixture('with-package'));
    expect(config.remotes).toEqual([]);
    expect(config.packages[0]).toMatchObject({
      registryType: 'npm',
      identifier: '@modelcontextprotocol/server-weather',
      transport: { type: 'stdio' },
    });
    expect(config).not.toHaveProperty('title');
  });

  it('maps _meta to meta and back', () => {
    const doc = {
      ...fixture('minimal'),
      _meta: { 'io.modelcontextprotocol.registry/publisher-provided': { tool: 'ci' } },
    };
    const imported = fromServerJson(doc);
    expect(imported.config.meta).toEqual(doc._meta);
    expect(toServerJson(imported)._meta).toEqual(doc._meta);
  });

  it('round-trips a Pylee version through server.json and leaves omitted optionals out', () => {
    const x = {
      name: 'io.github.acme/weather',
      description: 'Weather forecasts',
      version: '1.4.2',
      config: checkVersionConfig({
        packages: [npm()],
        icons: [{ src: 'https://acme.dev/icon.svg', theme: 'dark' }],
      }),
    };
    const doc = toServerJson(x);
    expect(doc.$schema).toBe(SERVER_JSON_SCHEMA_URL);
    expect(Object.keys(doc)).toEqual(['$schema', 'name', 'description', 'version', 'icons', 'packages']);
    expect(fromServerJson(doc)).toEqual(x);
  });

  it('does not share objects between the config and the exported document', () => {
    const x = {
      name: 'io.github.acme/weather',
      description: 'd',
      version: '1.0.0',
      config: checkVersionConfig(withPackage({})),
    };
    const doc = toServerJson(x);
    doc.packages![0]!.identifier = 'changed';
    expect(x.config.packages[0]!.identifier).toBe('@acme/weather');
  });

  it('refuses a package pinned to latest, naming the path and how to fix it', () => {
    const error = rejection(() => fromServerJson(fixture('package-version-latest')));
    expect(error.code).toBe('invalid-server-json');
    expect(error.status).toBe(400);
    expect(error.message).toBe(
      'packages[0].version "latest" is not an exact version: pin the version you tested, e.g. 1.4.2',
    );
    expect(paths(error)).toEqual(['packages[0].version']);
  });

  it.each(['latest', '^1.2.0', '>=1.0.0 <2'])('refuses a server version %j', (version) => {
    const error = rejection(() => fromServerJson({ ...fixture('minimal'), version }));
    expect(error.code).toBe('invalid-server-json');
    expect(paths(error)).toEqual(['version']);
  });

  it('refuses a server name that is not reverse-DNS', () => {
    const error = rejection(() => fromServerJson({ ...fixture('minimal'), name: 'weather' }));
    expect(paths(error)).toEqual(['name']);
    expect(error.message).toContain('io.github.acme/weather');
  });

  it('refuses unknown top-level properties, with a hint for removed registry fields', () => {
    const error = rejection(() => fromServerJson({ ...fixture('minimal'), status: 'active' }));
    expect(error.code).toBe('invalid-server-json');
    expect(paths(error)).toEqual(['status']);
    expect(error.message).toMatch(/^status is managed by the registry/);
  });

  it('says to update a server.json written in the old snake_case format', () => {
    const error = rejection(() =>
      fromServerJson({
        $schema: 'https://static.modelcontextprotocol.io/schemas/2025-07-09/server.schema.json',
        name: 'io.github.acme/weather',
        description: 'd',
        version_detail: { version: '1.0.0' },
      }),
    );
    expect(error.extra.errors[0]!.path).toBe('$schema');
    expect(error.message).toContain(SERVER_JSON_SCHEMA_URL);
  });

  it('refuses a document that is not an object', () => {
    const error = rejection(() => fromServerJson('{}'));
    expect(error.message).toBe('server.json must be an object');
  });
});

describe('checkVersionConfig', () => {
  it('defaults remotes and packages to [] without modifying its input', () => {
    const input = { title: 'Weather' };
    expect(checkVersionConfig(input)).toEqual({ title: 'Weather', remotes: [], packages: [] });
    expect(input).toEqual({ title: 'Weather' });
  });

  it('drops properties set to undefined, as JSON would', () => {
    const config = checkVersionConfig({ title: undefined, packages: [npm({ runtimeHint: undefined })] });
    expect(Object.keys(config)).not.toContain('title');
    expect(Object.keys(config.packages[0]!)).not.toContain('runtimeHint');
  });

  it.each(['^1.2.0', '~1', '>=1', '1.x', '*', '1.2.*', '1.0 || 2.0', '[1.0,2.0)', '~=1.4', '==1.4'])(
    'refuses the version range %j',
    (version) => {
      const error = rejection(() => checkVersionConfig(withPackage({ registryType: 'pypi', version })));
      expect(error.code).toBe('invalid-config');
      expect(paths(error)).toEqual(['packages[0].version']);
      expect(error.message).toContain('is a version range, not an exact version: pin the version you tested');
    },
  );

  it('suggests the pinned form of a caret range', () => {
    const error = rejection(() => checkVersionConfig(withPackage({ version: '^1.2.0' })));
    expect(error.message).toBe(
      'packages[0].version "^1.2.0" is a version range, not an exact version: pin the version you tested, e.g. 1.2.0',
    );
  });

  it('refuses an empty version and a moving tag', () => {
    expect(paths(rejection(() => checkVersionConfig(withPackage({ version: '' }))))).toEqual([
      'packages[0].version',
    ]);
    expect(
      rejection(() => checkVersionConfig(withPackage({ registryType: 'oci', version: 'stable' }))).message,
    ).toContain('is a moving tag');
  });

  it('refuses an npm version that is not exact semver', () => {
    const error = rejection(() => checkVersionConfig(withPackage({ version: '1.2' })));
    expect(error.message).toContain('packages[0].version "1.2" is not an exact npm version');
  });

  it.each([
    ['pypi', 'mcp-server-time', '1.0.0rc1'],
    ['pypi', 'mcp-server-time', '2024.1.post1'],
    ['oci', 'ghcr.io/acme/weather', '2024.05.01'],
    ['oci', 'docker.io/library/postgres', 'v16.2-alpine'],
    ['homebrew', 'acme/tap/weather', '1.2.3_1'],
    ['nuget', 'Acme.Weather', '1.0.0.1'],
    ['npm', '@acme/weather', '2.0.0-rc.1'],
  ] as const)('accepts the exact %s version %s@%s', (registryType, identifier, version) => {
    const config = checkVersionConfig(withPackage({ registryType, identifier, version }));
    expect(config.packages[0]).toMatchObject({ registryType, identifier, version });
  });

  it.each(['ftp://x', 'javascript:alert(1)', 'mcp.example.com/mcp'])('refuses the remote URL %j', (url) => {
    const error = rejection(() => checkVersionConfig({ remotes: [{ type: 'sse', url }] }));
    expect(error.code).toBe('invalid-config');
    expect(paths(error)).toEqual(['remotes[0].url']);
  });

  it('says which scheme a URL without one needs', () => {
    const error = rejection(() =>
      checkVersionConfig({ remotes: [{ type: 'sse', url: 'mcp.example.com/sse' }] }),
    );
    expect(error.message).toBe(
      'remotes[0].url "mcp.example.com/sse" is not a URL: write it with its scheme, e.g. https://mcp.example.com/sse',
    );
  });

  it('refuses credentials in a remote URL', () => {
    const error = rejection(() =>
      checkVersionConfig({ remotes: [{ type: 'sse', url: 'https://user:pw@mcp.example.com/sse' }] }),
    );
    expect(error.message).toContain('must not contain credentials');
  });

  it('refuses a placeholder the remote does not declare in variables', () => {
    const error = rejection(() =>
      checkVersionConfig({
        remotes: [
          {
            type: 'streamable-http',
            url: 'https://{tenant}.example.com/{region}/mcp',
            variables: { tenant: { isRequired: true } },
          },
        ],
      }),
    );
    expect(paths(error)).toEqual(['remotes[0].url']);
    expect(error.message).toMatch(
      /^remotes\[0\]\.url uses \{region\} but remotes\[0\]\.variables does not declare it/,
    );
  });

  it('accepts declared URL placeholders, including a port', () => {
    const remote = {
      type: 'streamable-http' as const,
      url: 'https://{tenant}.example.com:{port}/mcp',
      variables: { tenant: {}, port: { default: '8443', format: 'number' as const } },
    };
    expect(checkVersionConfig({ remotes: [remote] }).remotes).toEqual([remote]);
  });

  it('refuses a transport URL that is not http(s)', () => {
    const error = rejection(() =>
      checkVersionConfig(
        withPackage({ transport: { type: 'streamable-http', url: 'ws://localhost:{PORT}/mcp' } }),
      ),
    );
    expect(paths(error)).toEqual(['packages[0].transport.url']);
  });

  it('refuses a registry Pylee does not support', () => {
    const error = rejection(() => checkVersionConfig(withPackage({ registryType: 'cargo' as 'npm' })));
    expect(paths(error)).toEqual(['packages[0].registryType']);
    expect(error.message).toBe(
      'packages[0].registryType "cargo" is not a registry Pylee supports: use one of npm, pypi, oci, homebrew, nuget',
    );
  });

  it('refuses unknown properties at the top level and inside a package', () => {
    expect(paths(rejection(() => checkVersionConfig({ colour: 'red' })))).toEqual(['colour']);
    const error = rejection(() =>
      checkVersionConfig(withPackage({ transport: { type: 'stdio', url: 'x' } as never })),
    );
    expect(paths(error)).toEqual(['packages[0].transport.url']);
    expect(error.message).toContain('is not a known property: remove it (known: type)');
  });

  it('suggests the camelCase name for a snake_case property', () => {
    const error = rejection(() => checkVersionConfig({ packages: [{ ...npm(), runtime_hint: 'npx' }] }));
    expect(error.message).toBe(
      'packages[0].runtime_hint is not a known property: server.json uses camelCase, rename it to runtimeHint',
    );
  });

  it('names the transport type that is not supported', () => {
    const error = rejection(() =>
      checkVersionConfig(withPackage({ transport: { type: 'websocket' } as never })),
    );
    expect(paths(error)).toEqual(['packages[0].transport.type']);
    expect(error.message).toContain('use one of stdio, streamable-http, sse');
  });

  it('reports a missing transport with how to add one', () => {
    const { transport: _transport, ...pkg } = npm();
    const error = rejection(() => checkVersionConfig({ packages: [pkg] }));
    expect(paths(error)).toEqual(['packages[0].transport']);
    expect(error.message).toContain('"type": "stdio"');
  });

  it('refuses an argument of the wrong shape for its type', () => {
    const error = rejection(() =>
      checkVersionConfig(
        withPackage({ packageArguments: [{ type: 'positional', name: '--port' } as never] }),
      ),
    );
    expect(paths(error)).toContain('packages[0].packageArguments[0].name');
  });

  it('refuses a positional argument with neither valueHint nor value', () => {
    const error = rejection(() =>
      checkVersionConfig(withPackage({ packageArguments: [{ type: 'positional' }] })),
    );
    expect(paths(error)).toEqual(['packages[0].packageArguments[0]']);
  });

  it('refuses an environment variable declared twice in one package', () => {
    const error = rejection(() =>
      checkVersionConfig(withPackage({ environmentVariables: [{ name: 'API_KEY' }, { name: 'API_KEY' }] })),
    );
    expect(paths(error)).toEqual(['packages[0].environmentVariables[1].name']);
    expect(error.message).toContain('declared twice');
  });

  it('accepts the same environment variable in two packages', () => {
    const env = [{ name: 'API_KEY' }];
    expect(() =>
      checkVersionConfig({
        packages: [
          npm({ environmentVariables: env }),
          npm({ registryType: 'pypi', environmentVariables: env }),
        ],
      }),
    ).not.toThrow();
  });

  it.each(['API-KEY', '1KEY', 'API KEY', ''])('refuses the environment variable name %j', (name) => {
    const error = rejection(() => checkVersionConfig(withPackage({ environmentVariables: [{ name }] })));
    expect(paths(error)).toEqual(['packages[0].environmentVariables[0].name']);
  });

  it('refuses a header name that is not an HTTP token, and a header declared twice', () => {
    const remote = (headers: { name: string }[]) => ({
      remotes: [{ type: 'sse', url: 'https://mcp.example.com/sse', headers }],
    });
    expect(paths(rejection(() => checkVersionConfig(remote([{ name: 'X Api: Key' }]))))).toEqual([
      'remotes[0].headers[0].name',
    ]);
    expect(
      paths(rejection(() => checkVersionConfig(remote([{ name: 'X-Api-Key' }, { name: 'x-api-key' }])))),
    ).toEqual(['remotes[0].headers[1].name']);
  });

  it('refuses empty choices and a default that is not one of the choices', () => {
    expect(
      paths(
        rejection(() =>
          checkVersionConfig(withPackage({ environmentVariables: [{ name: 'MODE', choices: [] }] })),
        ),
      ),
    ).toEqual(['packages[0].environmentVariables[0].choices']);
    const error = rejection(() =>
      checkVersionConfig(
        withPackage({ environmentVariables: [{ name: 'MODE', choices: ['fast', 'safe'], default: 'slow' }] }),
      ),
    );
    expect(paths(error)).toEqual(['packages[0].environmentVariables[0].default']);
  });

  it('refuses a fileSha256 that is not 64 hex characters', () => {
    const error = rejection(() => checkVersionConfig(withPackage({ fileSha256: 'abc123' })));
    expect(paths(error)).toEqual(['packages[0].fileSha256']);
    expect(error.message).toContain('SHA-256');
  });

  it('refuses an OCI identifier with whitespace or a scheme, accepts an image reference', () => {
    const oci = (identifier: string) =>
      withPackage({ registryType: 'oci', identifier, version: '2024.05.01' });
    expect(paths(rejection(() => checkVersionConfig(oci('ghcr.io/acme/my image'))))).toEqual([
      'packages[0].identifier',
    ]);
    expect(rejection(() => checkVersionConfig(oci('https://ghcr.io/acme/weather'))).message).toContain(
      'drop the scheme, e.g. ghcr.io/acme/weather',
    );
    expect(() => checkVersionConfig(oci('docker.io/library/postgres'))).not.toThrow();
  });

  it('refuses an icon that is not served over https', () => {
    const error = rejection(() => checkVersionConfig({ icons: [{ src: 'http://acme.dev/icon.png' }] }));
    expect(paths(error)).toEqual(['icons[0].src']);
  });

  it('refuses a repository subfolder that leaves the repository', () => {
    const error = rejection(() =>
      checkVersionConfig({
        repository: { url: 'https://github.com/acme/mcp', source: 'github', subfolder: '../x' },
      }),
    );
    expect(paths(error)).toEqual(['repository.subfolder']);
  });

  it('refuses more than 50 packages', () => {
    const error = rejection(() => checkVersionConfig({ packages: Array.from({ length: 51 }, () => npm()) }));
    expect(paths(error)).toEqual(['packages']);
  });

  it('lists every problem in errors and counts the rest in the detail', () => {
    const error = rejection(() =>
      checkVersionConfig({ packages: [npm({ version: 'latest' }), npm({ version: '^2' })] }),
    );
    expect(paths(error)).toEqual(['packages[0].version', 'packages[1].version']);
    expect(error.message).toMatch(/\(and 1 more problem, listed in errors\)$/);
  });

  it('refuses a config that is not an object', () => {
    expect(rejection(() => checkVersionConfig(null)).message).toBe('config must be an object');
  });
});

describe('packageRefs', () => {
  it('lists each registryType/identifier/version once, in order', () => {
    const config = checkVersionConfig({
      packages: [
        npm(),
        npm({ transport: { type: 'streamable-http', url: 'http://localhost:8080/mcp' } }),
        npm({ version: '1.5.0' }),
        npm({ registryType: 'oci', identifier: 'ghcr.io/acme/weather' }),
      ],
    });
    expect(packageRefs(config)).toEqual([
      { registryType: 'npm', identifier: '@acme/weather', version: '1.4.2' },
      { registryType: 'npm', identifier: '@acme/weather', version: '1.5.0' },
      { registryType: 'oci', identifier: 'ghcr.io/acme/weather', version: '1.4.2' },
    ]);
  });
});

function hybridConfig(): VersionConfig {
  return checkVersionConfig({
    packages: [
      npm({
        environmentVariables: [
          { name: 'API_KEY', isRequired: true, isSecret: true },
          { name: 'LOG_LEVEL', default: 'info' },
          { name: 'MODE', value: 'server' },
        ],
      }),
    ],
    remotes: [
      {
        type: 'streamable-http',
        url: 'https://{tenant}.example.com/mcp?region={region}',
        variables: { tenant: { isRequired: true }, region: { default: 'eu' } },
        headers: [
          {
            name: 'Authorization',
            value: 'Bearer {token}',
            variables: { token: { isRequired: true, isSecret: true } },
          },
          { name: 'X-Client', value: 'pylee' },
          { name: 'X-Api-Key', isSecret: true },
        ],
      },
    ],
  });
}

describe('declaredInputs', () => {
  it('lists environment variables, URL variables and headers, skipping fixed values', () => {
    const remote = 'remotes[0] https://{tenant}.example.com/mcp?region={region}';
    expect(declaredInputs(hybridConfig())).toEqual([
      { name: 'API_KEY', isRequired: true, isSecret: true, where: 'packages[0] npm:@acme/weather' },
      {
        name: 'LOG_LEVEL',
        isRequired: false,
        isSecret: false,
        default: 'info',
        where: 'packages[0] npm:@acme/weather',
      },
      { name: 'tenant', isRequired: true, isSecret: false, where: remote },
      { name: 'region', isRequired: false, isSecret: false, default: 'eu', where: remote },
      { name: 'token', isRequired: true, isSecret: true, where: remote },
      { name: 'X-Api-Key', isRequired: false, isSecret: true, where: remote },
    ]);
  });

  it('lists the inputs of the official remote example', () => {
    expect(declaredInputs(fromServerJson(fixture('with-remote')).config)).toEqual([
      {
        name: 'host',
        isRequired: false,
        isSecret: false,
        default: 'api.example.com',
        where: 'remotes[0] https://{host}/mcp',
      },
      { name: 'Authorization', isRequired: true, isSecret: true, where: 'remotes[0] https://{host}/mcp' },
    ]);
  });
});

describe('applyValues', () => {
  it('fills URL placeholders, header and environment values without modifying the input', () => {
    const config = hybridConfig();
    const before = structuredClone(config);
    const applied = applyValues(config, {
      tenant: 'acme',
      token: 's3cret',
      'X-Api-Key': 'k1',
      API_KEY: 'k2',
    });
    expect(config).toEqual(before);
    const remote = applied.remotes[0]!;
    expect(remote.url).toBe('https://acme.example.com/mcp?region=eu');
    expect(remote.headers!.map((h) => [h.name, h.value])).toEqual([
      ['Authorization', 'Bearer s3cret'],
      ['X-Client', 'pylee'],
      ['X-Api-Key', 'k1'],
    ]);
    expect(applied.packages[0]!.environmentVariables!.map((e) => [e.name, e.value])).toEqual([
      ['API_KEY', 'k2'],
      ['LOG_LEVEL', 'info'],
      ['MODE', 'server'],
    ]);
  });

  it('leaves unknown placeholders and unset inputs as they are', () => {
    const applied = applyValues(hybridConfig(), {});
    expect(applied.remotes[0]!.url).toBe('https://{tenant}.example.com/mcp?region=eu');
    expect(applied.remotes[0]!.headers![0]!.value).toBe('Bearer {token}');
    expect(applied.remotes[0]!.headers![2]).not.toHaveProperty('value');
  });

  it('does not let a value override a fixed one, nor read inherited keys', () => {
    const applied = applyValues(
      hybridConfig(),
      Object.assign(Object.create({ tenant: 'proto' }), { MODE: 'x' }),
    );
    expect(applied.packages[0]!.environmentVariables![2]!.value).toBe('server');
    expect(applied.remotes[0]!.url).toContain('{tenant}');
  });

  it('fills a package transport URL from values and the package environment', () => {
    const config = checkVersionConfig(
      withPackage({
        transport: { type: 'streamable-http', url: 'http://localhost:{PORT}/{path}' },
        environmentVariables: [{ name: 'PORT', default: '8080' }],
      }),
    );
    const transport = applyValues(config, { path: 'mcp' }).packages[0]!.transport;
    expect(transport).toEqual({ type: 'streamable-http', url: 'http://localhost:8080/mcp' });
  });
});
