// Runs before `npm start` and `npm test` (prestart/pretest), on whatever Node the machine has:
// installs the locked npm dependencies (which bring Node 24) when they are missing or stale, and
// the Debian packages the command needs when running as root with apt-get. Plain JavaScript on
// purpose: it must run before Node 24 and the TypeScript toolchain exist.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const PACKAGES = { start: ['redis-server'], test: ['redis-server', 'docker-compose', 'chromium'] };
const BINARIES = { 'redis-server': 'redis-server', 'docker-compose': 'docker-compose', chromium: 'chromium' };

function log(message) {
  process.stderr.write(`pylee setup: ${message}\n`);
}

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    log(`${command} ${args.join(' ')} failed (exit ${result.status})`);
    process.exit(result.status ?? 1);
  }
}

function dependenciesStale() {
  const installed = path.join(root, 'node_modules', '.package-lock.json');
  if (!fs.existsSync(installed) || !fs.existsSync(path.join(root, 'node_modules', '.bin', 'node')))
    return true;
  return fs.statSync(path.join(root, 'package-lock.json')).mtimeMs > fs.statSync(installed).mtimeMs;
}

function onPath(binary) {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
}

if (dependenciesStale()) {
  // `npm install` honours the lockfile; `npm ci` would refuse it because the registry lacks
  // chdb's engines for other platforms, which the lockfile therefore cannot list.
  log('installing npm dependencies');
  run('npm', ['install', '--no-audit', '--no-fund']);
}

const missing = (PACKAGES[process.argv[2]] ?? []).filter((pkg) => !onPath(BINARIES[pkg]));
if (missing.length > 0) {
  const canInstall = process.getuid?.() === 0 && onPath('apt-get');
  if (canInstall) {
    log(`installing Debian packages: ${missing.join(' ')}`);
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', ...missing], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } else {
    log(`missing ${missing.join(', ')}; install with: sudo apt-get install ${missing.join(' ')}`);
  }
}

// The web UI: built into web/build (served by the API at /) when missing or older than its sources.
function newestMtime(entry) {
  const stat = fs.statSync(entry, { throwIfNoEntry: false });
  if (!stat) return 0;
  if (!stat.isDirectory()) return stat.mtimeMs;
  let newest = stat.mtimeMs;
  for (const name of fs.readdirSync(entry)) newest = Math.max(newest, newestMtime(path.join(entry, name)));
  return newest;
}

const web = path.join(root, 'web');
const sources = ['src', 'static', 'svelte.config.js', 'vite.config.ts'].map((f) => path.join(web, f));
const built = fs.statSync(path.join(web, 'build', 'index.html'), { throwIfNoEntry: false });
const node24 = path.join(root, 'node_modules', '.bin', 'node');
if (!built || Math.max(...sources.map(newestMtime)) > built.mtimeMs) {
  log('building the web UI (vite build)');
  const result = spawnSync(
    node24,
    [path.join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'],
    {
      cwd: web,
      stdio: 'inherit',
    },
  );
  if (result.status !== 0) {
    log(`vite build failed (exit ${result.status})`);
    process.exit(result.status ?? 1);
  }
} else if (!fs.existsSync(path.join(web, '.svelte-kit', 'tsconfig.json'))) {
  // ESLint and svelte-check read the tsconfig SvelteKit generates.
  run(node24, [path.join(root, 'node_modules', '@sveltejs', 'kit', 'svelte-kit.js'), 'sync']);
}
