import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { Webhook } from 'standardwebhooks';

/** One request the sink received. */
export interface SinkRequest {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  /** What the sink answered (undefined: it hung). */
  status: number | undefined;
  /** Block Kit problems found, for paths registered with {@link Sink.slack}. */
  slackErrors: string[];
  /** `Date.now()` when the request's body had arrived. */
  receivedAt: number;
}

/** How the sink answers one request on a path. */
export type Behaviour =
  | { status: number; body?: string; retryAfter?: string; headers?: Record<string, string> }
  /** Never answers: the caller's timeout must fire. */
  | 'hang';

export interface Sink {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly requests: SinkRequest[];
  /** Answers the next requests on `path` with these behaviours in turn, then 200. */
  script(path: string, ...behaviours: Behaviour[]): void;
  /**
   * Treats `path` as a Slack incoming webhook: payloads are checked against Block Kit limits and, like
   * Slack, a bad one gets `400 invalid_blocks` (the problems are in `slackErrors`).
   */
  slack(path: string): string;
  /** Requests received on `path`. */
  on(path: string): SinkRequest[];
  /** Resolves once `path` received at least `count` requests answered 2xx (polling). */
  waitForDelivered(path: string, count?: number, timeoutMs?: number): Promise<SinkRequest[]>;
  /** Resolves once `path` received at least `count` requests of any outcome. */
  waitForRequests(path: string, count?: number, timeoutMs?: number): Promise<SinkRequest[]>;
  close(): Promise<void>;
}

/** Slack's Block Kit limits (https://docs.slack.dev/reference/block-kit/blocks). */
const LIMITS = {
  blocks: 50,
  header: 150,
  section: 3000,
  fields: 10,
  field: 2000,
  context: 10,
  actions: 25,
  button: 75,
  url: 3000,
};

/** Problems Slack would refuse a message for; empty when it is fine. */
export function validateSlackMessage(payload: unknown): string[] {
  const errors: string[] = [];
  if (!payload || typeof payload !== 'object') return ['payload is not a JSON object'];
  const msg = payload as { text?: unknown; blocks?: unknown };
  if (typeof msg.text !== 'string' || msg.text.trim() === '') errors.push('fallback text is missing');
  if (msg.blocks === undefined) return errors;
  if (!Array.isArray(msg.blocks)) return [...errors, 'blocks is not an array'];
  if (msg.blocks.length > LIMITS.blocks) errors.push(`${msg.blocks.length} blocks > ${LIMITS.blocks}`);
  const textObj = (t: unknown, where: string, max: number, plainOnly = false) => {
    const o = t as { type?: unknown; text?: unknown } | undefined;
    if (!o || (o.type !== 'plain_text' && o.type !== 'mrkdwn'))
      return errors.push(`${where}: not a text object`);
    if (plainOnly && o.type !== 'plain_text') errors.push(`${where}: must be plain_text`);
    if (typeof o.text !== 'string' || o.text.length === 0) return errors.push(`${where}: empty text`);
    if (o.text.length > max) errors.push(`${where}: ${o.text.length} chars > ${max}`);
  };
  msg.blocks.forEach((b: Record<string, unknown>, i) => {
    const where = `blocks[${i}] (${String(b?.type)})`;
    switch (b?.type) {
      case 'header':
        textObj(b.text, `${where}.text`, LIMITS.header, true);
        break;
      case 'section': {
        if (b.text === undefined && b.fields === undefined) errors.push(`${where}: needs text or fields`);
        if (b.text !== undefined) textObj(b.text, `${where}.text`, LIMITS.section);
        if (b.fields !== undefined) {
          if (!Array.isArray(b.fields) || b.fields.length === 0)
            errors.push(`${where}.fields: not a non-empty array`);
          else {
            if (b.fields.length > LIMITS.fields)
              errors.push(`${where}: ${b.fields.length} fields > ${LIMITS.fields}`);
            b.fields.forEach((f, j) => textObj(f, `${where}.fields[${j}]`, LIMITS.field));
          }
        }
        break;
      }
      case 'context':
        if (!Array.isArray(b.elements) || b.elements.length === 0) errors.push(`${where}: no elements`);
        else {
          if (b.elements.length > LIMITS.context)
            errors.push(`${where}: ${b.elements.length} elements > ${LIMITS.context}`);
          b.elements.forEach((e, j) => textObj(e, `${where}.elements[${j}]`, LIMITS.section));
        }
        break;
      case 'actions':
        if (!Array.isArray(b.elements) || b.elements.length === 0) errors.push(`${where}: no elements`);
        else {
          if (b.elements.length > LIMITS.actions) errors.push(`${where}: too many elements`);
          b.elements.forEach((e: Record<string, unknown>, j) => {
            if (e.type !== 'button')
              return errors.push(`${where}.elements[${j}]: only buttons are checked here`);
            textObj(e.text, `${where}.elements[${j}].text`, LIMITS.button, true);
            if (typeof e.url !== 'string' || e.url.length > LIMITS.url || !/^https?:\/\//.test(e.url))
              errors.push(`${where}.elements[${j}].url: not an http(s) URL of at most ${LIMITS.url} chars`);
          });
        }
        break;
      case 'divider':
        break;
      default:
        errors.push(`${where}: unknown block type`);
    }
  });
  return errors;
}

/** Verifies a request's Standard Webhooks signature with `secret` and returns the parsed payload (throws when wrong). */
export function verifyWebhook(req: SinkRequest, secret: string): unknown {
  const headers = {
    'webhook-id': String(req.headers['webhook-id']),
    'webhook-timestamp': String(req.headers['webhook-timestamp']),
    'webhook-signature': String(req.headers['webhook-signature']),
  };
  return new Webhook(secret).verify(req.body, headers);
}

/** A local HTTP receiver for notification tests. */
export async function startSink(): Promise<Sink> {
  const requests: SinkRequest[] = [];
  const scripts = new Map<string, Behaviour[]>();
  const slackPaths = new Set<string>();
  const sockets = new Set<Socket>();

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        json = undefined;
      }
      const record: SinkRequest = {
        path,
        headers: req.headers,
        body,
        json,
        status: undefined,
        slackErrors: [],
        receivedAt: Date.now(),
      };
      requests.push(record);
      const behaviour = scripts.get(path)?.shift() ?? { status: 200 };
      if (behaviour === 'hang') return;
      let { status } = behaviour;
      let answer = behaviour.body ?? 'ok';
      if (slackPaths.has(path) && status < 300) {
        record.slackErrors = validateSlackMessage(json);
        if (record.slackErrors.length > 0) {
          status = 400;
          answer = 'invalid_blocks';
        }
      }
      record.status = status;
      const headers: Record<string, string> = { 'content-type': 'text/plain', ...(behaviour.headers ?? {}) };
      if (behaviour.retryAfter !== undefined) headers['retry-after'] = behaviour.retryAfter;
      res.writeHead(status, headers).end(answer);
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const on = (path: string) => requests.filter((r) => r.path === path);
  const waitUntil = async (
    path: string,
    done: (rs: SinkRequest[]) => boolean,
    what: string,
    timeoutMs: number,
  ) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const rs = on(path);
      if (done(rs)) return rs;
      if (Date.now() > deadline) {
        throw new Error(
          `sink: ${what} on ${path} within ${timeoutMs} ms; got ${rs.map((r) => r.status ?? 'hung').join(', ') || 'nothing'}`,
        );
      }
      await sleep(25);
    }
  };

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    script(path, ...behaviours) {
      scripts.set(path, [...(scripts.get(path) ?? []), ...behaviours]);
    },
    slack(path) {
      slackPaths.add(path);
      return path;
    },
    on,
    waitForDelivered(path, count = 1, timeoutMs = 20_000) {
      return waitUntil(
        path,
        (rs) => rs.filter((r) => r.status !== undefined && r.status < 300).length >= count,
        `no ${count} delivered request(s)`,
        timeoutMs,
      );
    },
    waitForRequests(path, count = 1, timeoutMs = 20_000) {
      return waitUntil(path, (rs) => rs.length >= count, `no ${count} request(s)`, timeoutMs);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
