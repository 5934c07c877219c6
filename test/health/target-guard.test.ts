import { describe, expect, it } from 'vitest';
import { checkSpec, type CheckKind } from '#core/health/model.ts';
import { assertTargetAddressesAllowed } from '#core/health/target-guard.ts';
import { canonicalHost } from '#core/net/ssrf.ts';
import { fixedDns, REFUSED_HTTP_URLS, REFUSED_TCP_URLS } from './guard-fixtures.ts';

const spec = (kind: CheckKind, url: string) => checkSpec({ name: 'guarded', kind, url });

describe('health-check targets at save', () => {
  for (const kind of ['http', 'mcp', 'dependency'] as const) {
    it.each(REFUSED_HTTP_URLS)(`refuses a ${kind} check on %s`, (url, why) => {
      expect(() => spec(kind, url)).toThrow(
        expect.objectContaining({ status: 400, code: 'health-check-target-refused' }),
      );
      expect(() => spec(kind, url)).toThrow(why);
      expect(() => spec(kind, url)).toThrow(/not link-local, cloud metadata or other special-purpose ones/);
    });
  }

  it.each(REFUSED_TCP_URLS)('refuses a dependency check on %s', (url, why) => {
    expect(() => spec('dependency', url)).toThrow(
      expect.objectContaining({ status: 400, code: 'health-check-target-refused' }),
    );
    expect(() => spec('dependency', url)).toThrow(why);
  });

  it('allows public, private and loopback targets: services the owner runs on their own network', () => {
    for (const url of [
      'https://api.example.com/health',
      'http://93.184.216.34/',
      'http://10.1.2.3:8080/health',
      'http://172.16.0.9/',
      'http://192.168.1.10/mcp',
      'http://127.0.0.1:3000/health',
      'http://localhost:3000/health',
      'http://[::1]:3000/',
      'http://[fd12:3456::1]/',
      'http://100.64.0.1/',
      'http://2130706433/', // 127.0.0.1
    ])
      expect(spec('http', url).target.url).toBe(url);
    for (const url of [
      'tcp://10.0.0.5:5432',
      'tcp://db.internal:5432',
      'tcp://localhost:6379',
      'tcp://[::1]:6379',
    ])
      expect(spec('dependency', url).target.url).toBe(url);
  });

  it('refuses a tcp host no resolver could read as an address or name', () => {
    expect(() => spec('dependency', 'tcp://1.2.3.999:80')).toThrow(
      expect.objectContaining({ code: 'invalid-url' }),
    );
  });

  it('reads tcp hosts as an http URL would, so numeric spellings cannot hide an address', () => {
    expect(canonicalHost(new URL('tcp://0xA9FEA9FE:80'))).toBe('169.254.169.254');
    expect(canonicalHost(new URL('tcp://2852039166:80'))).toBe('169.254.169.254');
    expect(canonicalHost(new URL('tcp://[::FFFF:169.254.169.254]:80'))).toBe('::ffff:a9fe:a9fe');
    expect(canonicalHost(new URL('tcp://DB.Internal:5432'))).toBe('db.internal');
    expect(canonicalHost(new URL('tcp://1.2.3.999:80'))).toBeUndefined();
  });
});

describe('what a target host name resolves to, at save', () => {
  const dns = fixedDns({
    'metadata.corp.test': ['169.254.169.254'],
    'dual.corp.test': ['10.0.0.7', 'fd00:ec2::254'],
    'db.corp.test': ['10.0.0.7'],
    'mapped.corp.test': ['::ffff:169.254.169.254'],
  });

  it('refuses a name for a link-local or metadata address, naming the name and the address', async () => {
    await expect(
      assertTargetAddressesAllowed('http://metadata.corp.test/latest', { resolve: dns }),
    ).rejects.toMatchObject({
      status: 400,
      code: 'health-check-target-refused',
      message: expect.stringMatching(/metadata\.corp\.test resolves to 169\.254\.169\.254 is a link-local/),
    });
    await expect(
      assertTargetAddressesAllowed('tcp://mapped.corp.test:80', { resolve: dns }),
    ).rejects.toMatchObject({ code: 'health-check-target-refused' });
    // One refused address among allowed ones is enough.
    await expect(
      assertTargetAddressesAllowed('https://dual.corp.test/health', { resolve: dns }),
    ).rejects.toThrow(/cloud metadata address/);
  });

  it('allows a name for a private address, and one that does not resolve yet (its runs will say so)', async () => {
    await expect(
      assertTargetAddressesAllowed('tcp://db.corp.test:5432', { resolve: dns }),
    ).resolves.toBeUndefined();
    await expect(
      assertTargetAddressesAllowed('https://not-yet.corp.test/health', { resolve: dns }),
    ).resolves.toBeUndefined();
  });

  it('leaves IP literals and unparseable URLs to checkSpec, without a lookup', async () => {
    const asked = dns.asked.length;
    await assertTargetAddressesAllowed('http://169.254.169.254/', { resolve: dns });
    await assertTargetAddressesAllowed('not a url', { resolve: dns });
    expect(dns.asked.length).toBe(asked);
  });
});
