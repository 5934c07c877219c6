import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNotifyWorker, type NotifyWorker } from '#alerts/processors/notify.ts';
import { bearer, BOOTSTRAP_TOKEN, buildTestApi, testSecretBox, type TestApi } from '#test/helpers/api.ts';
import { killLeftovers, pyleeEnv, runPylee } from '#test/helpers/pylee-process.ts';
import { startSink, verifyWebhook, type Sink } from '#test/helpers/sink.ts';
import { openTestStores, silentLogger } from '#test/helpers/stores.ts';
import { exportsZip, fixtureCounts, OSV_FIXTURES } from './osv-zip.ts';

// The vulnerability API end to end: import over HTTP, findings on version creation and after an
// import, the version.vulnerable event at a webhook, the org view of what runs where, ignore
// rules, and the no-vulnerabilities gate refusing a deployment.

type Stores = Awaited<ReturnType<typeof openTestStores>>;
let stores: Stores;
let api: TestApi;
let sink: Sink;
let worker: NotifyWorker;

beforeAll(async () => {
  stores = await openTestStores();
  api = await buildTestApi(stores);
  sink = await startSink();
  worker = await startNotifyWorker({
    db: stores.db,
    redis: stores.redis,
    logger: silentLogger,
    box: testSecretBox,
    policy: { allowPrivate: true },
    backoffBaseMs: 50,
    sweepEveryMs: 300,
  });
});
afterAll(async () => {
  await killLeftovers();
  await worker?.close();
  await api?.app.close();
  await sink?.close();
  await stores?.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies of many shapes
type Json = Record<string, any>;
async function call(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: object,
  token = BOOTSTRAP_TOKEN,
) {
  const res = await api.app.inject({ method, url: `/api/v1${url}`, headers: bearer(token), payload });
  return { status: res.statusCode, json: (res.body ? res.json() : {}) as Json };
}
const upload = (data: Uint8Array, token = BOOTSTRAP_TOKEN, query = '') =>
  api.app.inject({
    method: 'POST',
    url: `/api/v1/advisories/import${query}`,
    headers: { ...bearer(token), 'content-type': 'application/zip' },
    payload: Buffer.from(data),
  });

const pkg = (registryType: string, identifier: string, version: string) => ({
  registryType,
  identifier,
  version,
  transport: { type: 'stdio' },
});

describe('vulnerabilities API', () => {
  it('imports OSV exports, reports findings, tells a webhook, gates production', async () => {
    const hook = await call('POST', '/channels', {
      name: 'security',
      kind: 'webhook',
      url: `${sink.url}/security`,
      events: ['version.vulnerable'],
    });
    expect(hook.status).toBe(201);
    expect((await call('POST', '/servers', { slug: 'weather', name: 'Weather' })).status).toBe(201);
    const created = await call('POST', '/servers/weather/versions', {
      version: '1.0.0',
      status: 'stable',
      packages: [
        pkg('npm', 'acorn', '6.4.0'),
        pkg('nuget', 'Newtonsoft.Json', '12.0.3'),
        pkg('oci', 'ghcr.io/a/w', '1.0.0'),
      ],
    });
    expect(created.status).toBe(201);
    // Scanned on creation: clean before any advisory is loaded, the image reported as not scanned.
    const before = await call('GET', '/servers/weather/versions/1.0.0/vulnerabilities');
    expect(before.json).toMatchObject({ findings: [], scannedAt: expect.any(String) });
    expect(before.json.coverage.map((c: Json) => c.status)).toEqual(['scanned', 'scanned', 'not-scanned']);
    for (const env of ['development', 'production']) {
      expect(
        (await call('POST', '/servers/weather/deployments', { version: '1.0.0', environment: env })).status,
      ).toBe(201);
    }

    // Refusals change nothing: a write token, a JSON body, a corrupt zip, an unknown ecosystem.
    const writer = await api.token(['write']);
    expect((await upload(exportsZip(['npm']), writer)).statusCode).toBe(403);
    expect((await call('POST', '/advisories/import', { id: 'x' })).json.code).toBe('invalid-request');
    expect((await call('POST', '/advisories/import', { records: [{ id: 'GHSA-x' }] })).json.detail).toBe(
      'records[0]: modified must be a string',
    );
    expect((await upload(new Uint8Array([0x50, 0x4b, 3, 4]))).json()).toMatchObject({
      status: 400,
      code: 'invalid-archive',
    });
    expect((await upload(exportsZip(['npm']), BOOTSTRAP_TOKEN, '?ecosystem=Go')).json().detail).toBe(
      'ecosystem "Go" is not one Pylee scans; use one of npm, PyPI, NuGet',
    );
    expect((await call('GET', '/advisories/status')).json).toMatchObject({ advisories: 0, lastImport: null });

    const imported = await upload(exportsZip(['npm', 'PyPI', 'NuGet']));
    expect(imported.statusCode).toBe(200);
    const counts = fixtureCounts(['npm', 'PyPI', 'NuGet']);
    expect(imported.json()).toMatchObject({
      imported: counts.stored,
      withdrawn: counts.withdrawn,
      rescanned: 1,
      newlyAffected: 1,
      announced: 1,
    });

    // The running version was re-scanned; the event names the advisories and where it runs.
    const [delivered] = await sink.waitForDelivered('/security');
    const event = verifyWebhook(delivered!, hook.json.secret as string) as Json;
    expect(event).toMatchObject({ type: 'version.vulnerable', server: 'weather', version: '1.0.0' });
    expect(event.data.advisories.map((a: Json) => a.id)).toEqual([
      'GHSA-5crp-9r3c-p9vr',
      'GHSA-6chw-6frg-f759',
    ]);
    expect(event.data.runningIn).toEqual([
      { environment: 'development', weight: 100 },
      { environment: 'production', weight: 100 },
    ]);

    const high = await call('GET', '/servers/weather/versions/1.0.0/vulnerabilities?severity=high');
    expect(high.json.findings.map((f: Json) => [f.package.identifier, f.advisory.id, f.fixed])).toEqual([
      ['acorn', 'GHSA-6chw-6frg-f759', ['5.7.4', '6.4.1', '7.1.1']],
      ['Newtonsoft.Json', 'GHSA-5crp-9r3c-p9vr', ['13.0.1']],
    ]);
    expect((await call('GET', '/servers/weather/versions/1.0.0/vulnerabilities?severity=bad')).status).toBe(
      400,
    );
    expect((await call('GET', '/servers/weather/versions/9.9.9/vulnerabilities')).json.code).toBe(
      'version-not-found',
    );
    const org = await call('GET', '/vulnerabilities?severity=critical&deployed=true');
    expect(org.json.versions).toEqual([]);
    const running = await call('GET', '/vulnerabilities?severity=high&deployed=true');
    expect(
      running.json.versions.map((v: Json) => [v.server, v.version, v.runningIn.length, v.counts.high]),
    ).toEqual([['weather', '1.0.0', 2, 2]]);
    // A version whose scan is missing (made by a path that does not scan) is scanned when the org
    // view is read, never shown as clean.
    await stores.db.query(
      "DELETE FROM version_scans WHERE version_id = (SELECT id FROM versions WHERE version = '1.0.0')",
    );
    await stores.db.query(
      "DELETE FROM version_findings WHERE version_id = (SELECT id FROM versions WHERE version = '1.0.0')",
    );
    const rescanned = await call('GET', '/vulnerabilities?severity=high&deployed=true');
    expect(rescanned.json.versions.map((v: Json) => [v.version, v.counts.high])).toEqual([['1.0.0', 2]]);

    // The gate: production refuses a version with a high finding, naming the advisories.
    const gated = await call('PATCH', '/environments/production', {
      gates: [{ type: 'no-vulnerabilities', severity: 'high' }],
    });
    expect(gated.status).toBe(200);
    expect(
      (
        await call('PATCH', '/environments/staging', {
          gates: [{ type: 'no-vulnerabilities', severity: 'severe' }],
        })
      ).json.code,
    ).toBe('invalid-gate');
    await call('POST', '/servers/weather/versions', {
      version: '1.0.1',
      status: 'stable',
      packages: [pkg('npm', 'acorn', '6.4.0'), pkg('nuget', 'Newtonsoft.Json', '13.0.1')],
    });
    const refused = await call('POST', '/servers/weather/deployments', {
      version: '1.0.1',
      environment: 'production',
    });
    expect(refused.status).toBe(409);
    expect(refused.json.code).toBe('gate-not-met');
    expect(refused.json.detail).toContain('GHSA-6chw-6frg-f759 (high, acorn@6.4.0)');

    // An ignore rule (reason required) lets it through; it is audited and can be deleted.
    expect(
      (await call('POST', '/vulnerability-ignores', { advisory: 'GHSA-6chw-6frg-f759', reason: ' ' })).json
        .code,
    ).toBe('reason-required');
    const rule = await call('POST', '/vulnerability-ignores', {
      advisory: 'GHSA-6chw-6frg-f759',
      package: 'acorn',
      server: 'weather',
      reason: 'acorn only parses our own templates',
    });
    expect(rule.status).toBe(201);
    const deployed = await call('POST', '/servers/weather/deployments', {
      version: '1.0.1',
      environment: 'production',
    });
    expect(deployed.status).toBe(201);
    expect((await call('GET', '/vulnerability-ignores')).json.rules).toHaveLength(1);
    expect((await call('DELETE', `/vulnerability-ignores/${rule.json.id}`)).status).toBe(200);
    const audit = await call('GET', '/audit?limit=100');
    const actions = (audit.json.events as Json[]).map((e) => e.action);
    expect(actions).toEqual(
      expect.arrayContaining([
        'advisories.import',
        'vulnerability-ignore.create',
        'vulnerability-ignore.delete',
      ]),
    );

    // The security patch of 1.0.0: acorn to 6.4.1 (its 6.x fix); Newtonsoft.Json's fix is 13.0.1, a major bump.
    const proposal = await call('POST', '/servers/weather/versions/1.0.0/patch', {});
    expect(proposal.json).toMatchObject({
      from: '1.0.0',
      version: '1.0.2',
      upgrades: [{ identifier: 'acorn', from: '6.4.0', to: '6.4.1', fixes: ['GHSA-6chw-6frg-f759'] }],
      unfixed: [
        {
          identifier: 'Newtonsoft.Json',
          advisory: 'GHSA-5crp-9r3c-p9vr',
          reason: 'the fix needs a major bump (13.0.1)',
        },
      ],
      created: false,
    });
    expect(proposal.json.releaseNotes).toContain('- GHSA-6chw-6frg-f759: acorn 6.4.0 → 6.4.1');
    expect(proposal.json.releaseNotes).toContain(
      '- GHSA-5crp-9r3c-p9vr: Newtonsoft.Json 12.0.3: the fix needs a major bump (13.0.1)',
    );
    const made = await call('POST', '/servers/weather/versions/1.0.0/patch', { create: true }, writer);
    expect(made.json).toMatchObject({ version: '1.0.2', created: true });
    const patched = await call('GET', '/servers/weather/versions/1.0.2');
    expect(patched.json).toMatchObject({ status: 'development', createdFrom: '1.0.0' });
    expect(patched.json.packages.map((p: Json) => p.version)).toEqual(['6.4.1', '12.0.3', '1.0.0']);
    const left = await call('GET', '/servers/weather/versions/1.0.2/vulnerabilities');
    expect(left.json.findings.map((f: Json) => f.advisory.id)).toEqual(['GHSA-5crp-9r3c-p9vr']);
    const reader = await api.token(['read']);
    expect(
      (await call('POST', '/servers/weather/versions/1.0.0/patch', { create: true }, reader)).status,
    ).toBe(403);

    // An SBOM for the image: its npm and PyPI components are scanned in the image's place.
    await call('POST', '/servers/weather/versions', {
      version: '2.0.0',
      packages: [pkg('oci', 'ghcr.io/a/w', '2.0.0')],
    });
    const put = (body: object, query = '') =>
      api.app.inject({
        method: 'PUT',
        url: `/api/v1/servers/weather/versions/2.0.0/sbom${query}`,
        headers: bearer(BOOTSTRAP_TOKEN),
        payload: body,
      });
    expect(
      (await put({ bomFormat: 'CycloneDX', specVersion: '1.5', components: [{ purl: 5 }] })).json(),
    ).toMatchObject({
      code: 'invalid-sbom',
      detail: 'SBOM components[0].purl must be a string',
    });
    expect((await put({ spdxVersion: 'SPDX-2.3', packages: [{ externalRefs: {} }] })).json().detail).toBe(
      'SBOM packages[0].externalRefs must be an array',
    );
    expect((await put({ name: 'x' })).json().detail).toContain(
      'is neither CycloneDX JSON (bomFormat) nor SPDX JSON',
    );
    expect(
      (await put({ bomFormat: 'CycloneDX', specVersion: '1.5' }, '?image=ghcr.io/other')).json().code,
    ).toBe('invalid-image');
    const attached = await put({
      bomFormat: 'CycloneDX',
      specVersion: '1.5',
      components: [
        { type: 'library', name: 'ansi-regex', purl: 'pkg:npm/ansi-regex@6.0.0' },
        { type: 'library', name: 'Flask', purl: 'pkg:pypi/Flask@2.2.4' },
        { type: 'library', name: 'openssl', purl: 'pkg:deb/debian/openssl@3.0.11-1' },
      ],
    });
    expect(attached.json()).toEqual({
      image: 'ghcr.io/a/w',
      format: 'cyclonedx',
      components: 2,
      otherComponents: 1,
    });
    const viaSbom = await call('GET', '/servers/weather/versions/2.0.0/vulnerabilities');
    expect(viaSbom.json.findings.map((f: Json) => [f.package.identifier, f.advisory.id])).toEqual([
      ['ansi-regex', 'GHSA-93q8-gq69-wqmw'],
      ['Flask', 'PYSEC-2023-62'],
    ]);
    expect(viaSbom.json.coverage).toEqual([
      expect.objectContaining({
        registryType: 'oci',
        status: 'scanned',
        reason: expect.stringContaining('SBOM'),
      }),
    ]);

    const status = await call('GET', '/advisories/status');
    const { perEcosystem } = counts;
    expect(status.json).toMatchObject({
      advisories: counts.stored,
      perEcosystem: { npm: perEcosystem.npm, pypi: perEcosystem.PyPI, nuget: perEcosystem.NuGet },
    });
  });

  it('pylee advisories and versions scan: formats and exit codes 0 / 1 / 2 / 3', async () => {
    const url = await api.app.listen({ port: 0, host: '127.0.0.1' });
    const env = pyleeEnv({ PYLEE_URL: url, PYLEE_TOKEN: BOOTSTRAP_TOKEN, PYLEE_CONFIG_DIR: stores.dir });
    const [imported, status, sarif, clean, unknown, usage] = await Promise.all([
      runPylee(['advisories', 'import', `${OSV_FIXTURES}/npm`, '--json'], env),
      runPylee(['advisories', 'status'], env),
      runPylee(['versions', 'scan', 'weather', '1.0.0', '--severity', 'high', '--format', 'sarif'], env),
      runPylee(
        ['versions', 'scan', 'weather', '1.0.1', '--severity', 'critical', '--format', 'markdown'],
        env,
      ),
      runPylee(['versions', 'scan', 'weather', '9.9.9'], env),
      runPylee(['versions', 'scan', 'weather', '1.0.0', '--severity', 'severe'], env),
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    const npm = fixtureCounts(['npm']);
    const all = fixtureCounts(['npm', 'PyPI', 'NuGet']);
    expect(JSON.parse(imported.stdout)).toMatchObject({
      records: npm.records,
      unchanged: npm.stored,
      imported: 0,
    });
    expect(status.stdout).toContain(
      `${all.stored} advisories: npm ${all.perEcosystem.npm}, PyPI ${all.perEcosystem.PyPI}, NuGet ${all.perEcosystem.NuGet}`,
    );
    expect(sarif.code, sarif.stderr).toBe(1);
    const run = (JSON.parse(sarif.stdout) as Json).runs[0];
    expect(run.results.map((r: Json) => [r.ruleId, r.level])).toEqual([
      ['GHSA-6chw-6frg-f759', 'error'],
      ['GHSA-5crp-9r3c-p9vr', 'error'],
    ]);
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toContain('### Vulnerabilities of weather@1.0.1');
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toContain('version 9.9.9 of server weather was not found (version-not-found)');
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain(
      '--severity severe is not a level; use one of low, medium, high, critical',
    );

    // Ignore rules from the CLI: a read-only CI token still scans (the stored findings), the rule
    // hides the advisory until it is deleted, and a rule without a reason is a usage error.
    const reader = pyleeEnv({ ...env, PYLEE_TOKEN: await api.token(['read']) });
    const ignore = await runPylee(
      [
        'vulnerabilities',
        'ignore',
        'CVE-2024-21907',
        '--reason',
        'MaxDepth is set',
        '--package',
        'Newtonsoft.Json',
        '--server',
        'weather',
        '--for',
        '30d',
        '--json',
      ],
      env,
    );
    expect(ignore.code, ignore.stderr).toBe(0);
    const rule = JSON.parse(ignore.stdout) as Json;
    expect(rule).toMatchObject({
      advisory: 'CVE-2024-21907',
      package: 'Newtonsoft.Json',
      server: 'weather',
      reason: 'MaxDepth is set',
      active: true,
    });
    expect(Date.parse(rule.expiresAt) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const [listed, scanned, org, noReason] = await Promise.all([
      runPylee(['vulnerabilities', 'ignores'], reader),
      runPylee(['versions', 'scan', 'weather', '1.0.0', '--format', 'json'], reader),
      runPylee(['vulnerabilities', 'list', '--deployed', '--severity', 'high'], reader),
      runPylee(['vulnerabilities', 'ignore', 'GHSA-6chw-6frg-f759'], env),
    ]);
    expect(listed.stdout).toMatch(
      /CVE-2024-21907 +Newtonsoft\.Json +weather +\d{4}-\d\d-\d\d \d\d:\d\d +\S+ +MaxDepth is set/,
    );
    expect(scanned.code, scanned.stderr).toBe(1);
    const report = JSON.parse(scanned.stdout) as Json;
    expect(report.ignored.map((f: Json) => f.advisory.id)).toContain('GHSA-5crp-9r3c-p9vr');
    expect(report.findings.map((f: Json) => f.advisory.id)).not.toContain('GHSA-5crp-9r3c-p9vr');
    expect(org.code, org.stderr).toBe(0);
    expect(org.stdout).toMatch(/weather +1\.0\.0 +stable +development 100% +1 high +GHSA-6chw-6frg-f759\n/);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain('--reason');
    const unignore = await runPylee(['vulnerabilities', 'unignore', rule.id], reader);
    expect(unignore.code).toBe(1);
    expect(unignore.stderr).toContain('missing-permission');
    expect((await runPylee(['vulnerabilities', 'unignore', rule.id], env)).stdout).toContain(
      `deleted ignore rule ${rule.id} (CVE-2024-21907)`,
    );
    const after = await runPylee(['versions', 'scan', 'weather', '1.0.0', '--format', 'json'], reader);
    expect((JSON.parse(after.stdout) as Json).ignored).toEqual([]);
  });
});
