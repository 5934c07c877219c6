/**
 * The demo's receivers: a Slack-shaped incoming webhook that prints each message the way a phone
 * would show it, and a Standard Webhooks receiver that verifies every signature before printing.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

export interface Sinks {
  slackUrl: string;
  webhookUrl: string;
  /** Set once the webhook channel exists (its secret is shown only at creation). */
  setWebhookSecret(secret: string): void;
  slackMessages(): SlackMessage[];
  close(): Promise<void>;
}

export interface SlackMessage {
  text: string;
  at: number;
}

interface Block {
  type: string;
  text?: { text?: string };
  fields?: { text?: string }[];
  elements?: { text?: string | { text?: string } }[];
}

/** A Block Kit message as plain lines: header, then sections and their fields. */
function slackLines(payload: { text?: string; blocks?: Block[] }): string[] {
  const lines: string[] = [];
  for (const block of payload.blocks ?? []) {
    if (block.text?.text) lines.push(block.text.text);
    if (block.fields) lines.push(block.fields.map((field) => field.text ?? '').join('  ·  '));
    for (const element of block.elements ?? []) {
      const text = typeof element.text === 'string' ? element.text : element.text?.text;
      if (text) lines.push(text);
    }
  }
  return lines.length ? lines : [payload.text ?? ''];
}

const readBody = (req: http.IncomingMessage) =>
  new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });

export async function startSinks(print: (line: string) => void): Promise<Sinks> {
  const slack: SlackMessage[] = [];
  let verifier: Webhook | undefined;
  const seen = new Set<string>();

  const server = http.createServer((req, res) => {
    void readBody(req).then((body) => {
      if (req.url === '/slack') {
        const payload = JSON.parse(body) as { text?: string; blocks?: Block[] };
        const lines = slackLines(payload);
        slack.push({ text: lines.join('\n'), at: Date.now() });
        print(`📣 Slack  ${lines[0] ?? ''}`);
        for (const line of lines.slice(1, 6)) print(`          ${line.replaceAll('\n', ' ').slice(0, 150)}`);
        res.writeHead(200).end('ok');
        return;
      }
      if (req.url === '/webhook') {
        const id = String(req.headers['webhook-id'] ?? '');
        try {
          if (!verifier) throw new Error('no secret yet');
          verifier.verify(body, {
            'webhook-id': id,
            'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
            'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
          });
        } catch (error) {
          print(`✖ webhook ${id}: signature refused (${(error as Error).message})`);
          res.writeHead(401).end();
          return;
        }
        // Delivery is at least once: a receiver drops repeats by webhook-id.
        if (!seen.has(id)) {
          seen.add(id);
          const event = JSON.parse(body) as { type: string; data?: Record<string, unknown> };
          const deployment = event.data?.deployment as
            { version?: string; status?: string; weight?: number; environment?: string } | undefined;
          const detail = deployment
            ? `${deployment.version} in ${deployment.environment}: ${deployment.status}, weight ${deployment.weight} %`
            : '';
          print(`🔏 Webhook (signature verified) ${event.type} ${detail}`);
        }
        res.writeHead(204).end();
        return;
      }
      res.writeHead(404).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    slackUrl: `http://127.0.0.1:${port}/slack`,
    webhookUrl: `http://127.0.0.1:${port}/webhook`,
    setWebhookSecret(secret) {
      verifier = new Webhook(secret);
    },
    slackMessages: () => slack,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
