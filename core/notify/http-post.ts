import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { guardedLookup, hostOf, refusalFor, WebhookTargetRefused, type SsrfPolicy } from './ssrf.ts';

export interface PostResult {
  status: number;
  /** Seconds or an HTTP date, as the receiver sent it. */
  retryAfter: string | undefined;
  /** The first bytes of the body, for the delivery's last error. */
  body: string;
}

const MAX_BODY_CHARS = 512;

/**
 * POSTs `body` with a hard timeout covering connect, send and the response. The connection goes to
 * an address checked against `policy` at connect time, and redirects are not followed (a 3xx is an
 * answer like any other), so neither DNS rebinding nor a redirect can reach a refused address.
 */
export function postJson(
  rawUrl: string,
  body: string,
  headers: Record<string, string>,
  options: { timeoutMs: number; policy: SsrfPolicy },
): Promise<PostResult> {
  const url = new URL(rawUrl);
  const host = hostOf(url);
  if (net.isIP(host)) {
    const why = refusalFor(host, options.policy);
    if (why) return Promise.reject(new WebhookTargetRefused(why));
  }
  const client = url.protocol === 'https:' ? https : url.protocol === 'http:' ? http : undefined;
  if (!client) return Promise.reject(new WebhookTargetRefused(`unsupported scheme ${url.protocol}`));
  return new Promise<PostResult>((resolve, reject) => {
    const req = client.request(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          'user-agent': 'Pylee-Notifier/1',
          ...headers,
        },
        lookup: guardedLookup(options.policy) as unknown as net.LookupFunction,
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < MAX_BODY_CHARS) text += chunk;
        });
        res.on('end', () => {
          clearTimeout(timer);
          const retryAfter = res.headers['retry-after'];
          resolve({ status: res.statusCode ?? 0, retryAfter, body: text.slice(0, MAX_BODY_CHARS) });
        });
        res.on('error', (error) => {
          clearTimeout(timer);
          reject(error);
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`no complete answer within ${options.timeoutMs} ms`));
    }, options.timeoutMs);
    req.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.end(body);
  });
}

/** `Retry-After` as milliseconds from now (seconds or an HTTP date); undefined when absent or unreadable. */
export function retryAfterMs(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
