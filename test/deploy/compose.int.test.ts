import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

// There is no Docker engine on these machines; Debian's docker-compose (1.29) still validates and
// renders the file, which is what these tests rely on.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const COMPOSE_FILE = path.join(ROOT, 'docker-compose.yml');
const TOKEN = 'compose-test-bootstrap-token-123';
const ROLES = ['api', 'collector', 'gateway', 'alerts'] as const;
const STORES = ['postgres', 'clickhouse', 'redis'] as const;
const STORE_URLS = {
  PYLEE_DATABASE_URL: 'postgres://pylee:pylee@postgres:5432/pylee',
  PYLEE_CLICKHOUSE_URL: 'http://pylee:pylee@clickhouse:8123/pylee',
  PYLEE_REDIS_URL: 'redis://redis:6379',
};

interface ComposeResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs Debian's docker-compose on `docker-compose.yml` in `cwd`; fails loudly when it is not installed. */
function compose(args: string[], options: { cwd?: string; withoutToken?: boolean } = {}): ComposeResult {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PYLEE_BOOTSTRAP_TOKEN: TOKEN,
    PYLEE_SECRET_KEY: 'ab'.repeat(32),
  };
  if (options.withoutToken) delete env.PYLEE_BOOTSTRAP_TOKEN;
  const result = spawnSync('docker-compose', ['-f', 'docker-compose.yml', ...args], {
    cwd: options.cwd ?? ROOT,
    env,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (result.error) {
    if ((result.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'docker-compose is not installed, so docker-compose.yml cannot be checked: ' +
          'run `apt-get install docker-compose` (Debian package, 1.29)',
      );
    }
    throw result.error;
  }
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Splits the `services:` section of `docker-compose config` output into one text block per service. */
function serviceBlocks(rendered: string): Map<string, string> {
  const lines = rendered.split('\n');
  const blocks = new Map<string, string>();
  let name: string | undefined;
  let body: string[] = [];
  for (const line of lines.slice(lines.indexOf('services:') + 1)) {
    if (/^\S/.test(line)) break;
    const header = /^ {2}([\w.-]+):$/.exec(line);
    if (header) {
      if (name !== undefined) blocks.set(name, body.join('\n'));
      name = header[1];
      body = [];
    } else {
      body.push(line);
    }
  }
  if (name !== undefined) blocks.set(name, body.join('\n'));
  return blocks;
}

function renderedServices(): Map<string, string> {
  const result = compose(['config']);
  expect(result.status, result.stderr).toBe(0);
  return serviceBlocks(result.stdout);
}

function block(services: Map<string, string>, name: string): string {
  const text = services.get(name);
  if (text === undefined) throw new Error(`docker-compose config has no service "${name}"`);
  return text;
}

describe('docker-compose.yml', () => {
  const tempDirs: string[] = [];
  afterEach(() => {
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function copyToTempDir(edit: (text: string) => string = (text) => text): string {
    const dir = mkdtempSync(path.join(tmpdir(), 'pylee-compose-'));
    tempDirs.push(dir);
    writeFileSync(path.join(dir, 'docker-compose.yml'), edit(readFileSync(COMPOSE_FILE, 'utf8')));
    return dir;
  }

  it('is valid for docker-compose when PYLEE_BOOTSTRAP_TOKEN is set', () => {
    const result = compose(['config', '-q']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stderr).toBe('');
  });

  it('defines the four Pylee roles and the three stores', () => {
    const result = compose(['config', '--services']);
    expect(result.status, result.stderr).toBe(0);
    const names = result.stdout.split('\n').filter((line) => line !== '');
    expect(names.sort()).toEqual([...ROLES, ...STORES].sort());
  });

  it('runs each role with its --role, the server store URLs and a wait for healthy stores', () => {
    const services = renderedServices();
    for (const role of ROLES) {
      const text = block(services, role);
      expect(text, role).toMatch(new RegExp(`command:\\n\\s+- start\\n\\s+- --role\\n\\s+- ${role}\\n`));
      for (const [name, url] of Object.entries(STORE_URLS)) expect(text, role).toContain(`${name}: ${url}`);
      expect(text, role).toContain(`PYLEE_BOOTSTRAP_TOKEN: ${TOKEN}`);
      expect(text, role).toContain('PYLEE_HOST: 0.0.0.0');
      for (const store of STORES) {
        expect(text, role).toMatch(new RegExp(`\\n {6}${store}:\\n {8}condition: service_healthy\\n`));
      }
      expect(text, role).toMatch(/build:\n\s+context: /);
    }
  });

  it('gives every store a health check and a named volume', () => {
    const services = renderedServices();
    for (const store of STORES) {
      const text = block(services, store);
      expect(text, store).toMatch(/healthcheck:\n( {6}.*\n)* {6}test:\n/);
      expect(text, store).toMatch(/volumes:\n\s+- [\w-]+-data:\//);
    }
  });

  it('leaves collector, gateway and alerts free of fixed host ports and names, so they scale', () => {
    const services = renderedServices();
    for (const role of ['collector', 'gateway', 'alerts']) {
      const text = block(services, role);
      expect(text, role).not.toContain('published:');
      expect(text, role).not.toContain('container_name:');
    }
    expect(block(services, 'collector')).toMatch(/ports:\n\s+- target: 4318\n/);
    expect(block(services, 'gateway')).toMatch(/ports:\n\s+- target: 8081\n/);
    expect(block(services, 'api')).toMatch(/ports:\n\s+- published: 8080\n\s+target: 8080\n/);
  });

  it('refuses to render without PYLEE_BOOTSTRAP_TOKEN instead of using a well-known token', () => {
    const result = compose(['config', '-q'], { cwd: copyToTempDir(), withoutToken: true });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('PYLEE_BOOTSTRAP_TOKEN');
  });

  it('fails validation when a service has an unknown key', () => {
    const control = compose(['config', '-q'], { cwd: copyToTempDir() });
    expect(control.status, control.stderr).toBe(0);

    const broken = copyToTempDir((text) => {
      const edited = text.replace(/^ {2}alerts:\n/m, '  alerts:\n    replicas_typo: 2\n');
      expect(edited).not.toBe(text);
      return edited;
    });
    const result = compose(['config', '-q'], { cwd: broken });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('replicas_typo');
  });
});
