import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_BIN, pyleeEnv, ROOT } from '#test/helpers/pylee-process.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// `npm run demo` is what a newcomer runs first: this runs it once, the way the README says, and
// checks that the whole story happened (it takes about two minutes).

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('npm run demo', () => {
  let child: ChildProcess | undefined;
  // The demo stops its own children on SIGTERM; a failed run must not leave it going.
  afterAll(() => {
    if (child?.exitCode === null) child.kill('SIGTERM');
  });

  it('tells the whole story: alert in Slack, canary verdict fail, automatic rollback', async () => {
    const demo = spawn(NODE_BIN, [path.join(ROOT, 'demo/run.ts')], {
      cwd: ROOT,
      env: pyleeEnv({
        DEMO_EXIT: '1',
        DEMO_API_PORT: String(await freePort()),
        DEMO_OTLP_PORT: String(await freePort()),
        DEMO_DATA_DIR: tempDir('pylee-demo'),
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = demo;
    let output = '';
    demo.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    demo.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => demo.on('exit', resolve));

    expect(output).toMatch(
      /Webhook \(signature verified\) deployment\.step 1\.1\.0 in production: progressing, weight 30 %/,
    );
    expect(output).toMatch(/Traffic in production: 1\.0\.0 70 %, 1\.1\.0 30 %/);
    expect(output).toMatch(/📣 Slack {2}FIRING · CRITICAL · Canary errors above stable/);
    expect(output).toMatch(/Canary analysis verdict: FAIL/);
    expect(output).toMatch(/Pylee rolled 1\.1\.0 back: production is on 1\.0\.0 again/);
    expect(output).toMatch(/Traffic in production: 1\.0\.0 100 %/);
    expect(output).not.toMatch(/signature refused|Demo failed/);
    expect(code, output).toBe(0);
  }, 330_000);
});
