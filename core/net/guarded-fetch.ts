import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import {
  guardedLookup,
  hostOf,
  hostRefusal,
  TargetRefused,
  type GuardOptions,
  type SsrfPolicy,
} from './ssrf.ts';

/** The part of `fetch` that HTTP probes and the MCP SDK's transports use. */
export type FetchLike = (input: string | URL, init?: RequestInit) => Promise<Response>;

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const NULL_BODY_STATUSES = new Set([204, 205, 304]);
const MAX_REDIRECTS = 20;
const BODY_HEADERS = [
  'content-type',
  'content-length',
  'content-encoding',
  'content-language',
  'content-location',
];
const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie'];

/**
 * A `fetch` whose every connection goes through the SSRF guard of `ssrf.ts`, as the webhook POSTs
 * of `core/notify/http-post.ts` do: IP literals and metadata names are refused before connecting,
 * host names are resolved by {@link guardedLookup} so the address checked is the address connected
 * to (DNS rebinding gets nowhere), and every redirect hop is checked the same way.
 *
 * Plain HTTP/1.1 over `node:http`, one connection per request; the body streams as it arrives.
 * Honours `method`, `headers`, `body`, `signal` and `redirect` (`follow`, the default, `manual`
 * and `error`); no cookies, caches or content decoding.
 */
export function guardedFetch(policy: SsrfPolicy, options: GuardOptions = {}): FetchLike {
  const refuse = options.refuse ?? ((detail: string) => new TargetRefused(detail));
  const lookup = guardedLookup(policy, { ...options, refuse }) as unknown as net.LookupFunction;
  return async (input, init = {}) => {
    let url = new URL(input);
    let method = (init.method ?? 'GET').toUpperCase();
    const headers = new Headers(init.headers);
    if (!headers.has('accept')) headers.set('accept', '*/*'); // as fetch sends it
    let body: Buffer | undefined;
    if (init.body !== undefined && init.body !== null) {
      // A Response reads every kind of body fetch accepts, and knows its default content type.
      const reader = new Response(init.body);
      body = Buffer.from(await reader.arrayBuffer());
      const type = reader.headers.get('content-type');
      if (type && !headers.has('content-type')) headers.set('content-type', type);
    }
    const signal = init.signal ?? undefined;
    const mode = init.redirect ?? 'follow';
    for (let hop = 0; ; hop++) {
      const why =
        url.protocol === 'http:' || url.protocol === 'https:' ? hostRefusal(hostOf(url), policy) : undefined;
      if (why) throw refuse(why);
      const res = await send(url, { method, headers, body, signal, lookup });
      const location = res.headers.get('location');
      if (!REDIRECT_STATUSES.has(res.status) || location === null || mode === 'manual') return res;
      await res.body?.cancel();
      if (mode === 'error') throw new TypeError(`redirected to ${location}, and redirect is "error"`);
      if (hop === MAX_REDIRECTS) throw new TypeError(`more than ${MAX_REDIRECTS} redirects`);
      const next = new URL(location, url);
      if (
        (res.status === 303 && method !== 'HEAD') ||
        ((res.status === 301 || res.status === 302) && method === 'POST')
      ) {
        method = 'GET';
        body = undefined;
        for (const name of BODY_HEADERS) headers.delete(name);
      }
      if (next.origin !== url.origin) for (const name of CREDENTIAL_HEADERS) headers.delete(name);
      url = next;
    }
  };
}

interface Outgoing {
  method: string;
  headers: Headers;
  body: Buffer | undefined;
  signal: AbortSignal | undefined;
  lookup: net.LookupFunction;
}

function send(url: URL, out: Outgoing): Promise<Response> {
  const client = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
  if (!client) return Promise.reject(new TypeError(`${url.protocol.replace(/:$/, '')} URLs are not fetched`));
  const headers: Record<string, string> = {};
  out.headers.forEach((value, name) => {
    headers[name] = value;
  });
  if (out.body) headers['content-length'] = String(out.body.byteLength);
  return new Promise<Response>((resolve, reject) => {
    const req = client.request(url, {
      method: out.method,
      headers,
      lookup: out.lookup,
      agent: false,
      ...(out.signal ? { signal: out.signal } : {}),
    });
    req.once('response', (res) => {
      const status = res.statusCode ?? 0;
      if (status < 200 || status > 599) {
        res.destroy();
        reject(new TypeError(`answered with status ${status}, which is not an HTTP status`));
        return;
      }
      const responseHeaders = new Headers();
      for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
        responseHeaders.append(res.rawHeaders[i] as string, res.rawHeaders[i + 1] as string);
      }
      const noBody = out.method === 'HEAD' || NULL_BODY_STATUSES.has(status);
      if (noBody) res.on('error', () => undefined).resume();
      const stream = noBody ? null : (Readable.toWeb(res) as WebReadableStream<Uint8Array>);
      const response = new Response(stream as ConstructorParameters<typeof Response>[0], {
        status,
        headers: responseHeaders,
        ...(isReasonPhrase(res.statusMessage) ? { statusText: res.statusMessage } : {}),
      });
      Object.defineProperty(response, 'url', { value: url.href });
      resolve(response);
    });
    // Kept for the whole request: an abort after the response (the probe's timeout) errors it again.
    req.on('error', reject);
    req.end(out.body);
  });
}

const isReasonPhrase = (text: string | undefined): text is string =>
  typeof text === 'string' && /^[\t\x20-\x7e\x80-\xff]*$/.test(text);
