import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NODE_BIN, pyleeEnv, ROOT } from '#test/helpers/pylee-process.ts';
import { tempDir } from '#test/helpers/temp-dir.ts';

// `npm run demo` is what a newcomer runs first: this runs it once, the way the README says, and
// checks that the whole story happened (it takes about two minutes), and that the gateway did it:
// the demo's clients only ever talk to the gateway, and it prints which version the gateway says
// (`x-pylee-version`) served each call, and the release health it prints shows the canary's crashes.

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The new sessions the gateway put on each version, summed over the "Gateway, last N s" lines of `text`. */
function newSessions(text: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [, version, n] of text.matchAll(
    /(\d+\.\d+\.\d+) served \d+ % \(\d+ calls, (\d+) new sessions\)/g,
  ))
    counts[version!] = (counts[version!] ?? 0) + Number(n);
  return counts;
}

describe('npm run demo', () => {
  let child: ChildProcess | undefined;
  // The demo stops its own children on SIGTERM; a failed run must not leave it going.
  afterAll(() => {
    if (child?.exitCode === null) child.kill('SIGTERM');
  });

  it('tells the whole story through the gateway: canary at 30 %, alert held, verdict fail with what changed, rollback, calls back on 1.0.0', async () => {
    const demo = spawn(NODE_BIN, [path.join(ROOT, 'demo/run.ts')], {
      cwd: ROOT,
      env: pyleeEnv({
        DEMO_EXIT: '1',
        DEMO_API_PORT: String(await freePort()),
        DEMO_OTLP_PORT: String(await freePort()),
        DEMO_GATEWAY_PORT: String(await freePort()),
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
    expect(output).toMatch(/Rollout weights in production: 1\.0\.0 70 %, 1\.1\.0 30 %/);
    // The canary's alert is held for its analysis: no page; the verdict says what changed, and one
    // message says the rollback ended the held alert.
    expect(output).not.toMatch(/📣 Slack {2}FIRING/);
    expect(output).toMatch(/Changed: @weather\/providers 1\.4\.0 → 2\.0\.0/);
    expect(output).toMatch(
      /📣 Slack {2}Held alerts · RESOLVED · weather-mcp 1\.1\.0\n.*1\.1\.0 no longer receives traffic in production: rolled back by Pylee after its canary analysis failed; held during the rollout/,
    );
    expect(output).toMatch(/Canary analysis verdict: FAIL/);
    expect(output).toMatch(/Pylee rolled 1\.1\.0 back: production is on 1\.0\.0 again/);
    expect(output).toMatch(/Rollout weights in production: 1\.0\.0 100 %/);

    // Before the canary the gateway served everything from 1.0.0; during it, it placed about 30 % of
    // the new sessions on 1.1.0 (bounds far outside the noise of a few hundred sessions).
    expect(output).toMatch(/Gateway, last 30 s: 1\.0\.0 served 100 % \(\d+ calls, \d+ new sessions\)\n/);
    const canary = output.slice(
      output.indexOf('Canary rollout of 1.1.0 started'),
      output.indexOf('Pylee rolled 1.1.0 back'),
    );
    const sessions = newSessions(canary);
    const share = (sessions['1.1.0'] ?? 0) / ((sessions['1.0.0'] ?? 0) + (sessions['1.1.0'] ?? 0));
    expect(share, canary).toBeGreaterThan(0.15);
    expect(share, canary).toBeLessThan(0.5);
    // The rollback: the gateway moved the canary's live sessions, then every call was served by 1.0.0.
    expect(output).toMatch(/moved \d+ live sessions? 1\.1\.0 → 1\.0\.0/);
    const after = /After the rollback the gateway answered (\d+) calls in 5 s: all from 1\.0\.0/.exec(output);
    expect(after, output).not.toBeNull();
    expect(Number(after?.[1])).toBeGreaterThan(50);
    // Release health, read from the API after the verdict and at the end: 1.1.0 dropped connections
    // under some calls, so its crash-free sessions are below 1.0.0's.
    const health = [
      ...output.matchAll(
        /Release health in production, last 5 min: 1\.0\.0 crash-free sessions ([\d.]+) % \((\d+) sessions\) · 1\.1\.0 ([\d.]+) % \((\d+) sessions\) — see http:\/\/127\.0\.0\.1:\d+\/servers\/weather-mcp\/releases/g,
      ),
    ];
    expect(health.length, output).toBe(2);
    for (const [line, stable, stableSessions, canaryRate, canarySessions] of health) {
      expect(Number(canaryRate), line).toBeLessThan(Number(stable));
      expect(Number(stableSessions), line).toBeGreaterThan(Number(canarySessions));
      expect(Number(canarySessions), line).toBeGreaterThan(5);
    }
    expect(output.indexOf(health[0]![0]), 'the first after the verdict').toBeGreaterThan(
      output.indexOf('Canary analysis verdict: FAIL'),
    );
    expect(output).not.toMatch(/signature refused|Demo failed/);
    expect(code, output).toBe(0);
  }, 330_000);
});
