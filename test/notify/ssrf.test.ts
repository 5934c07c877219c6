import { describe, expect, it } from 'vitest';
import { assertTargetAllowed, refusalFor } from '#core/notify/ssrf.ts';

const strict = { allowPrivate: false };
const lenient = { allowPrivate: true };

describe('SSRF policy', () => {
  it('allows public unicast addresses', () => {
    expect(refusalFor('93.184.216.34', strict)).toBeUndefined();
    expect(refusalFor('2606:2800:220:1:248:1893:25c8:1946', strict)).toBeUndefined();
  });

  it.each([
    ['169.254.169.254', /link-local/],
    ['fe80::1', /link-local/],
    ['::ffff:169.254.169.254', /link-local/],
    ['0.0.0.0', /unspecified/],
    ['::', /unspecified/],
    ['224.0.0.1', /multicast/],
    ['ff02::1', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['fd00:ec2::254', /metadata/],
    ['100.100.100.200', /metadata/],
    ['192.0.2.10', /reserved/],
  ])('always refuses %s', (address, why) => {
    expect(refusalFor(address, strict)).toMatch(why);
    expect(refusalFor(address, lenient)).toMatch(why);
  });

  it.each([
    ['10.1.2.3', /private/],
    ['172.16.0.1', /private/],
    ['192.168.1.1', /private/],
    ['127.0.0.1', /loopback/],
    ['::1', /loopback/],
    ['fd12:3456::1', /unique-local/],
    ['::ffff:10.0.0.1', /private/],
  ])('refuses %s unless PYLEE_ALLOW_PRIVATE_WEBHOOKS is set', (address, why) => {
    expect(refusalFor(address, strict)).toMatch(why);
    expect(refusalFor(address, strict)).toMatch(/PYLEE_ALLOW_PRIVATE_WEBHOOKS/);
    expect(refusalFor(address, lenient)).toBeUndefined();
  });

  it('checks schemes, credentials, metadata host names and what a host resolves to', async () => {
    await expect(assertTargetAllowed('ftp://example.com/x', lenient)).rejects.toThrow(/http or https/);
    await expect(assertTargetAllowed('file:///etc/passwd', lenient)).rejects.toThrow(/http or https/);
    await expect(assertTargetAllowed('not a url', lenient)).rejects.toThrow(/not a URL/);
    await expect(assertTargetAllowed('http://user:pw@127.0.0.1/', lenient)).rejects.toThrow(/user name/);
    await expect(assertTargetAllowed('http://metadata.google.internal/', lenient)).rejects.toThrow(
      /metadata/,
    );
    await expect(assertTargetAllowed('http://[::ffff:a9fe:a9fe]/', lenient)).rejects.toThrow(/link-local/);
    // localhost resolves to loopback: refused by default, allowed for tests and demos.
    await expect(assertTargetAllowed('http://localhost:9/', strict)).rejects.toMatchObject({
      code: 'webhook-url-refused',
      message: expect.stringMatching(/localhost resolves to .*loopback/),
    });
    await expect(assertTargetAllowed('http://localhost:9/', lenient)).resolves.toBeInstanceOf(URL);
    await expect(assertTargetAllowed('http://no-such-host.invalid/', lenient)).rejects.toThrow(
      /does not resolve/,
    );
  });
});
