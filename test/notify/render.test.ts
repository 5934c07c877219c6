import { describe, expect, it } from 'vitest';
import type { AlertGroupData, AlertNotice } from '#core/notify/events.ts';
import type { StoredEvent } from '#core/notify/publisher.ts';
import { formatNumber, renderSlack } from '#core/notify/slack.ts';
import { signedHeaders, webhookPayload } from '#core/notify/webhook.ts';
import { validateSlackMessage, verifyWebhook, type SinkRequest } from '#test/helpers/sink.ts';

const alert = (over: Partial<AlertNotice> = {}): AlertNotice => ({
  fingerprint: 'fp1',
  ruleId: 'r1',
  ruleName: 'High error rate',
  status: 'firing',
  severity: 'critical',
  server: 'matrix',
  environment: 'production',
  version: '1.3.0',
  operation: 'search_docs',
  labels: { severity: 'critical' },
  annotations: { summary: 'Error rate above 5 %', runbookUrl: 'https://runbooks.example.com/errors' },
  value: 0.1234567,
  threshold: 0.05,
  metric: 'error rate',
  baselineVersion: null,
  startsAt: '2025-01-01T10:00:00.000Z',
  endsAt: null,
  comparePath: '/servers/matrix/compare?a=1.2.0&b=1.3.0',
  ...over,
});

const event = (over: Partial<StoredEvent> = {}): StoredEvent => ({
  id: 'e1',
  type: 'alert.firing',
  server: 'matrix',
  environment: 'production',
  version: '1.3.0',
  labels: { severity: 'critical', alertname: 'High error rate' },
  summary: 'High error rate on matrix 1.3.0 (production)',
  data: { groupKey: 'g', status: 'firing', alerts: [alert()] } satisfies AlertGroupData,
  occurredAt: '2025-01-01T10:00:30.000Z',
  ...over,
});

const allText = (msg: ReturnType<typeof renderSlack>) => JSON.stringify(msg.blocks);

describe('Slack rendering', () => {
  it('shows severity, server, version, environment, value vs threshold and a comparison link', () => {
    const msg = renderSlack(event(), { publicUrl: 'https://pylee.example.com' });
    expect(validateSlackMessage(msg)).toEqual([]);
    expect(msg.blocks[0]).toEqual({
      type: 'header',
      text: { type: 'plain_text', text: 'FIRING · CRITICAL · High error rate' },
    });
    const text = allText(msg);
    for (const part of [
      'matrix',
      '1.3.0',
      'production',
      'critical',
      'error rate *0.1235* vs threshold *0.05*',
      'search_docs',
    ])
      expect(text).toContain(part);
    expect(text).toContain(
      'https://pylee.example.com/servers/matrix/compare?a=1.2.0&b=1.3.0|Compare versions',
    );
    expect(text).toContain('https://runbooks.example.com/errors|Runbook');
    expect(msg.text).toBe('High error rate on matrix 1.3.0 (production)');
  });

  it('says what the baseline was for relative rules, and renders resolved groups', () => {
    const resolved = event({
      type: 'alert.resolved',
      data: {
        groupKey: 'g',
        status: 'resolved',
        alerts: [
          alert({
            status: 'resolved',
            baselineVersion: '1.2.0',
            value: 840,
            threshold: 600,
            metric: 'p95 latency (ms)',
            endsAt: '2025-01-01T10:10:00.000Z',
          }),
        ],
      },
    });
    const msg = renderSlack(resolved);
    expect(validateSlackMessage(msg)).toEqual([]);
    expect((msg.blocks[0] as { text: { text: string } }).text.text).toMatch(/^RESOLVED/);
    expect(allText(msg)).toContain('p95 latency (ms) *840* vs baseline 1.2.0: *600*');
    expect(allText(msg)).toContain('resolved 2025-01-01T10:10:00.000Z');
    // Without PYLEE_PUBLIC_URL there is no link to build.
    expect(allText(msg)).not.toContain('Compare versions');
  });

  it('stays within Block Kit limits with huge groups and texts', () => {
    const long = 'x'.repeat(10_000);
    const alerts = Array.from({ length: 200 }, (_, i) =>
      alert({
        fingerprint: `f${i}`,
        ruleName: long,
        annotations: { summary: long },
        metric: long,
        operation: long,
      }),
    );
    const msg = renderSlack(
      event({
        server: long,
        version: long,
        summary: long,
        data: { groupKey: 'g', status: 'firing', alerts },
      }),
      { publicUrl: 'https://pylee.example.com' },
    );
    expect(validateSlackMessage(msg)).toEqual([]);
    expect(allText(msg)).toContain('190 more alerts');
  });

  it('renders deployment and canary events, and escapes Slack control characters', () => {
    const step = renderSlack(
      {
        ...event(),
        type: 'deployment.step',
        summary: 'matrix 1.3.0 → 25 % in production <@channel> & co',
        data: {
          status: 'progressing',
          strategy: 'canary',
          weight: 25,
          step: 2,
          comparePath: '/deployments/d1',
        },
      },
      { publicUrl: 'https://pylee.example.com/' },
    );
    expect(validateSlackMessage(step)).toEqual([]);
    expect(allText(step)).toContain('&lt;@channel&gt; &amp; co');
    expect(allText(step)).toContain('25%');
    expect(allText(step)).toContain('https://pylee.example.com/deployments/d1');

    const verdict = renderSlack({
      ...event(),
      type: 'canary.verdict',
      summary: 'Canary 1.3.0 failed',
      data: {
        verdict: 'fail',
        baselineVersion: '1.2.0',
        canaryVersion: '1.3.0',
        metrics: [{ name: 'error rate', canary: 0.08, baseline: 0.01, verdict: 'fail' }],
      },
    });
    expect(validateSlackMessage(verdict)).toEqual([]);
    expect((verdict.blocks[0] as { text: { text: string } }).text.text).toBe('Canary · FAIL · matrix 1.3.0');
    expect(allText(verdict)).toContain('error rate: *0.08* vs baseline *0.01* (fail)');
  });

  it('carries crash-free sessions in verdicts and alerts, text and blocks, and ignores a malformed sessions object', () => {
    const side = (version: string, crashFreeSessions: number | null) => ({
      version,
      sessions: 40,
      crashed: 3,
      crashFreeSessions,
      crashFreeUsers: 0.9,
    });
    const sessions = {
      environment: 'production',
      window: { from: '2025-01-01T09:30:00.000Z', to: '2025-01-01T10:00:00.000Z' },
      version: side('1.3.0', 0.92),
      baseline: side('1.2.0', 0.995),
    };
    const verdict = renderSlack({
      ...event(),
      type: 'canary.verdict',
      summary: 'matrix 1.3.0 vs 1.2.0 in production: fail',
      data: { verdict: 'fail', sessions },
    });
    expect(validateSlackMessage(verdict)).toEqual([]);
    expect(verdict.text).toBe(
      'matrix 1.3.0 vs 1.2.0 in production: fail — Crash-free sessions: 1.3.0 92.0 % vs 1.2.0 99.5 %',
    );
    expect(allText(verdict)).toContain('"Crash-free sessions: 1.3.0 92.0 % vs 1.2.0 99.5 %"');
    // An alert on a version of a threshold rule: its own sessions, in its environment; no finished
    // session yet reads "—".
    const firing = renderSlack(
      event({
        data: {
          groupKey: 'g',
          status: 'firing',
          alerts: [alert({ sessions: { ...sessions, version: side('1.3.0', null), baseline: null } })],
        },
      }),
    );
    expect(validateSlackMessage(firing)).toEqual([]);
    expect(firing.text).toContain(' — Crash-free sessions: 1.3.0 — in production');
    expect(allText(firing)).toContain('Crash-free sessions: 1.3.0 — in production');
    // Without sessions, or with a shape that is not one, nothing is added.
    for (const odd of [null, { environment: 'production', version: 'x' }, 'sessions']) {
      const plain = renderSlack({
        ...event(),
        type: 'canary.verdict',
        summary: 'fail',
        data: { sessions: odd },
      });
      expect(plain.text).toBe('fail');
      expect(allText(plain)).not.toContain('Crash-free');
    }
    // The webhook carries the object as it is.
    expect(
      webhookPayload('d1', { ...event(), type: 'canary.verdict', data: { sessions } }).data.sessions,
    ).toEqual(sessions);
  });

  it('formats numbers for a phone', () => {
    expect(formatNumber(0.123456)).toBe('0.1235');
    expect(formatNumber(123456)).toBe('123500');
    expect(formatNumber(null)).toBe('n/a');
    expect(formatNumber(1e-7)).toBe('1.00e-7');
  });
});

describe('webhook payloads', () => {
  it('are signed per Standard Webhooks, with one signature per active secret', () => {
    const secrets = [
      'whsec_' + Buffer.alloc(32, 1).toString('base64'),
      'whsec_' + Buffer.alloc(32, 2).toString('base64'),
    ];
    const body = JSON.stringify(webhookPayload('d1', event(), 'https://pylee.example.com'));
    const headers = signedHeaders('d1', secrets, body);
    expect(headers['webhook-id']).toBe('d1');
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    const req = { body, headers } as unknown as SinkRequest;
    for (const secret of secrets)
      expect(verifyWebhook(req, secret)).toMatchObject({ id: 'd1', type: 'alert.firing' });
    expect(() => verifyWebhook(req, 'whsec_' + Buffer.alloc(32, 3).toString('base64'))).toThrow();
    expect(() =>
      verifyWebhook({ ...req, body: body.replace('matrix', 'matriz') }, secrets[0] as string),
    ).toThrow();
    expect(JSON.parse(body)).toMatchObject({
      links: { compare: 'https://pylee.example.com/servers/matrix/compare?a=1.2.0&b=1.3.0' },
    });
  });
});
