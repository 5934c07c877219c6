import net from 'node:net';
import type { Resolve } from '#core/net/ssrf.ts';

/** A resolver with fixed answers, as a DNS server would give them; unknown names are ENOTFOUND. */
export function fixedDns(answers: Record<string, string[]>): Resolve & { asked: string[] } {
  const asked: string[] = [];
  const resolve: Resolve = (hostname, _options, callback) => {
    asked.push(hostname);
    const addresses = answers[hostname];
    setImmediate(() => {
      if (!addresses) {
        callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), []);
      } else
        callback(
          null,
          addresses.map((address) => ({ address, family: net.isIP(address) })),
        );
    });
  };
  return Object.assign(resolve, { asked });
}

/** Link-local, cloud metadata and unspecified targets, in the spellings a URL allows. */
export const REFUSED_HTTP_URLS: [string, RegExp][] = [
  ['http://169.254.169.254/latest/meta-data/', /link-local/],
  ['http://metadata.google.internal/computeMetadata/v1/', /cloud metadata host/],
  ['http://METADATA.google.internal./', /cloud metadata host/],
  ['http://[fe80::1]/', /link-local/],
  ['http://0.0.0.0:8080/', /unspecified/],
  ['http://[::]/', /unspecified/],
  ['http://[::ffff:169.254.169.254]/', /link-local/],
  ['http://[::ffff:a9fe:a9fe]/', /link-local/],
  ['http://2852039166/', /link-local/],
  ['http://0xA9FEA9FE/', /link-local/],
  ['http://0251.0376.0251.0376/', /link-local/],
  ['https://169.254.169.254./', /link-local/],
  ['http://[fd00:ec2::254]/', /cloud metadata address/],
  ['http://100.100.100.200/', /cloud metadata address/],
];
export const REFUSED_TCP_URLS: [string, RegExp][] = [
  ['tcp://169.254.169.254:80', /link-local/],
  ['tcp://metadata.google.internal:80', /cloud metadata host/],
  ['tcp://[fe80::1]:22', /link-local/],
  ['tcp://0.0.0.0:5432', /unspecified/],
  ['tcp://0:5432', /unspecified/],
  ['tcp://[::ffff:169.254.169.254]:80', /link-local/],
  ['tcp://2852039166:80', /link-local/],
  ['tcp://0xA9FEA9FE:80', /link-local/],
  ['tcp://0251.0376.0251.0376:80', /link-local/],
];
