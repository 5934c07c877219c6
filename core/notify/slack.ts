import type {
  AlertGroupData,
  AlertNotice,
  RolloutNotice,
  SessionsNotice,
  VersionSessionsNotice,
} from './events.ts';
import type { StoredEvent } from './publisher.ts';

/** Slack's documented Block Kit limits; longer text is cut with an ellipsis rather than refused by Slack. */
export const SLACK_LIMITS = {
  blocks: 50,
  headerText: 150,
  sectionText: 3000,
  fields: 10,
  fieldText: 2000,
  contextElements: 10,
  buttonText: 75,
  url: 3000,
  fallbackText: 4000,
} as const;

export interface SlackMessage {
  /** Fallback for notifications and screen readers; Slack wants it alongside blocks. */
  text: string;
  blocks: SlackBlock[];
}

type Text = { type: 'mrkdwn' | 'plain_text'; text: string };
export type SlackBlock =
  | { type: 'header'; text: { type: 'plain_text'; text: string } }
  | { type: 'section'; text?: Text; fields?: Text[] }
  | { type: 'context'; elements: Text[] }
  | { type: 'divider' }
  | {
      type: 'actions';
      elements: { type: 'button'; text: { type: 'plain_text'; text: string }; url: string }[];
    };

export interface RenderOptions {
  /** `PYLEE_PUBLIC_URL`: links are built from it; without it messages carry none. */
  publicUrl?: string | undefined;
}

const cut = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`);
/** Slack mrkdwn needs only these three escaped. */
const esc = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const header = (text: string): SlackBlock => ({
  type: 'header',
  text: {
    type: 'plain_text',
    text: cut(text.replace(/\s+/g, ' ').trim() || 'Pylee', SLACK_LIMITS.headerText),
  },
});
const section = (markdown: string): SlackBlock => ({
  type: 'section',
  text: { type: 'mrkdwn', text: cut(markdown, SLACK_LIMITS.sectionText) },
});
const fieldsBlock = (pairs: [string, string | null | undefined][]): SlackBlock | undefined => {
  const fields = pairs
    .filter((p): p is [string, string] => p[1] !== null && p[1] !== undefined && p[1] !== '')
    .slice(0, SLACK_LIMITS.fields)
    .map(([k, v]) => ({
      type: 'mrkdwn' as const,
      text: cut(`*${esc(k)}*\n${esc(v)}`, SLACK_LIMITS.fieldText),
    }));
  return fields.length > 0 ? { type: 'section', fields } : undefined;
};
const context = (texts: string[]): SlackBlock => ({
  type: 'context',
  elements: texts
    .slice(0, SLACK_LIMITS.contextElements)
    .map((t) => ({ type: 'mrkdwn' as const, text: cut(t, SLACK_LIMITS.sectionText) })),
});

function link(options: RenderOptions, path: unknown): string | undefined {
  if (!options.publicUrl || typeof path !== 'string' || path === '') return undefined;
  if (/^https?:\/\//.test(path)) return path;
  const url = `${options.publicUrl.replace(/\/+$/, '')}${path.startsWith('/') ? '' : '/'}${path}`;
  return url.length <= SLACK_LIMITS.url ? url : undefined;
}

const button = (text: string, url: string): SlackBlock => ({
  type: 'actions',
  elements: [{ type: 'button', text: { type: 'plain_text', text: cut(text, SLACK_LIMITS.buttonText) }, url }],
});

/** Numbers a person reads on a phone: at most 4 significant digits, no exponent for ordinary values. */
export function formatNumber(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return 'n/a';
  if (value === 0) return '0';
  const abs = Math.abs(value);
  if (abs >= 1e6 || abs < 1e-4) return value.toExponential(2);
  return String(Number(value.toPrecision(4)));
}

const str = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;

function withinBlockLimit(blocks: SlackBlock[]): SlackBlock[] {
  if (blocks.length <= SLACK_LIMITS.blocks) return blocks;
  const kept = blocks.slice(0, SLACK_LIMITS.blocks - 1);
  kept.push(context([`…and ${blocks.length - kept.length} more blocks not shown`]));
  return kept;
}

function message(text: string, blocks: (SlackBlock | undefined)[]): SlackMessage {
  return {
    text: cut(text || 'Pylee notification', SLACK_LIMITS.fallbackText),
    blocks: withinBlockLimit(blocks.filter((b): b is SlackBlock => b !== undefined)),
  };
}

const rate = (v: number | null) => (v === null ? '—' : `${(v * 100).toFixed(1)} %`);

/**
 * "Crash-free sessions: 1.1.0 92.0 % vs 1.0.0 99.5 %", or without a baseline
 * "Crash-free sessions: 1.1.0 92.0 % in production"; null for anything that is not a notice.
 */
export function crashFreeLine(value: unknown): string | null {
  if (!isSessionsNotice(value)) return null;
  const head = `Crash-free sessions: ${value.version.version} ${rate(value.version.crashFreeSessions)}`;
  return value.baseline
    ? `${head} vs ${value.baseline.version} ${rate(value.baseline.crashFreeSessions)}`
    : `${head} in ${value.environment}`;
}

/** Stored events are JSON from Postgres: the shape is checked before it is rendered. */
function isSessionsNotice(value: unknown): value is SessionsNotice {
  const side = (v: unknown) =>
    typeof v === 'object' &&
    v !== null &&
    typeof (v as VersionSessionsNotice).version === 'string' &&
    ((v as VersionSessionsNotice).crashFreeSessions === null ||
      typeof (v as VersionSessionsNotice).crashFreeSessions === 'number');
  if (typeof value !== 'object' || value === null) return false;
  const v = value as SessionsNotice;
  return typeof v.environment === 'string' && side(v.version) && (v.baseline === null || side(v.baseline));
}

/** Alerts shown one by one before the rest are only counted. */
const MAX_ALERTS_SHOWN = 10;

function isAlertGroup(data: Record<string, unknown>): data is AlertGroupData {
  return Array.isArray(data.alerts) && typeof data.status === 'string';
}

function observedLine(alert: AlertNotice): string {
  const against =
    alert.baselineVersion !== null
      ? `baseline ${esc(alert.baselineVersion)}: *${formatNumber(alert.threshold)}*`
      : `threshold *${formatNumber(alert.threshold)}*`;
  return `${esc(alert.metric)} *${formatNumber(alert.value)}* vs ${against}`;
}

/** "Rollout: deployment 1a2b3c4d, step 1/2 at 10 % since …, canary analysis running"; null without one. */
export function rolloutLine(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return null;
  const r = value as Partial<RolloutNotice>;
  if (typeof r.deploymentId !== 'string' || typeof r.weight !== 'number') return null;
  const step = typeof r.step === 'number' ? `step ${r.step}/${r.steps ?? '?'} ` : '';
  const since = typeof r.startedAt === 'string' ? ` since ${r.startedAt}` : '';
  return `Rollout: deployment ${r.deploymentId.slice(0, 8)}, ${step}at ${r.weight} %${since}${r.analysisRunning ? ', canary analysis running' : ''}`;
}

/** What an alert's notice adds about rollouts: the rollout, what it began after, what changed, why it resolved. */
function rolloutLines(alert: AlertNotice): string[] {
  const lines: string[] = [];
  const rollout = rolloutLine(alert.rollout);
  if (rollout) lines.push(rollout);
  if (Array.isArray(alert.correlation)) {
    for (const c of alert.correlation.slice(0, 2)) {
      if (typeof c?.text === 'string' && c.text) lines.push(`${c.text[0]?.toUpperCase()}${c.text.slice(1)}`);
    }
  }
  const changed = alert.changes?.summary;
  if (typeof changed === 'string' && changed) lines.push(changed);
  if (alert.status === 'resolved' && typeof alert.resolution === 'string')
    lines.push(`Resolved: ${alert.resolution}`);
  return lines;
}

function renderAlertGroup(event: StoredEvent, data: AlertGroupData, options: RenderOptions): SlackMessage {
  const resolved = data.status === 'resolved';
  const alerts = data.alerts;
  const first = alerts[0];
  const severity = first?.severity ?? event.labels.severity ?? 'info';
  const name = first?.ruleName ?? event.labels.alertname ?? 'alert';
  const count = alerts.filter((a) => a.status === (resolved ? 'resolved' : 'firing')).length || alerts.length;
  const state = resolved ? 'RESOLVED' : `FIRING${count > 1 ? ` ×${count}` : ''}`;
  const title = `${state} · ${severity.toUpperCase()} · ${name}`;
  const where = [
    event.server ?? first?.server,
    event.environment ?? first?.environment,
    event.version ?? first?.version,
  ]
    .filter(Boolean)
    .join(' / ');
  const blocks: (SlackBlock | undefined)[] = [
    header(title),
    fieldsBlock([
      ['Server', event.server ?? first?.server],
      ['Environment', event.environment ?? first?.environment],
      ['Version', event.version ?? first?.version],
      ['Severity', severity],
    ]),
  ];
  for (const alert of alerts.slice(0, MAX_ALERTS_SHOWN)) {
    const lines = [
      `*${esc(alert.ruleName)}*${alert.operation ? ` · tool \`${esc(alert.operation)}\`` : ''}${
        alerts.length > 1 ? ` (${alert.status})` : ''
      }`,
    ];
    if (alert.annotations.summary) lines.push(esc(alert.annotations.summary));
    lines.push(observedLine(alert));
    for (const line of rolloutLines(alert)) lines.push(esc(line));
    if (alerts.length > 1 && (alert.version || alert.server)) {
      lines.push(
        [alert.server, alert.environment, alert.version]
          .filter(Boolean)
          .map((s) => esc(String(s)))
          .join(' / '),
      );
    }
    const compare = link(options, alert.comparePath);
    const runbook = alert.annotations.runbookUrl;
    const links = [
      compare ? `<${compare}|Compare versions>` : undefined,
      runbook ? `<${runbook}|Runbook>` : undefined,
    ]
      .filter(Boolean)
      .join(' · ');
    if (links) lines.push(links);
    blocks.push(section(lines.join('\n')));
    // Its own line: how many of the version's sessions crashed, beside the metric that fired.
    const crashFree = crashFreeLine(alert.sessions);
    if (crashFree) blocks.push(section(esc(crashFree)));
    const times = [`Started ${alert.startsAt}`];
    if (alert.endsAt && alert.status === 'resolved') times.push(`resolved ${alert.endsAt}`);
    blocks.push(context(times));
  }
  if (alerts.length > MAX_ALERTS_SHOWN)
    blocks.push(context([`…and ${alerts.length - MAX_ALERTS_SHOWN} more alerts`]));
  const compare = link(options, first?.comparePath);
  if (compare && alerts.length === 1) blocks.push(button('Open comparison', compare));
  const fallback = `${title}${where ? ` — ${where}` : ''}${first ? ` — ${first.metric} ${formatNumber(first.value)} vs ${formatNumber(first.threshold)}` : ''}`;
  const crashFree = crashFreeLine(first?.sessions);
  return message(`${event.summary || fallback}${crashFree ? ` — ${crashFree}` : ''}`, blocks);
}

/** Well-known keys producers put in `data`, shown as fields when present. */
const DATA_FIELDS: [string, string][] = [
  ['status', 'Status'],
  ['verdict', 'Verdict'],
  ['strategy', 'Strategy'],
  ['step', 'Step'],
  ['weight', 'Traffic'],
  ['fromVersion', 'From'],
  ['toVersion', 'To'],
  ['baselineVersion', 'Baseline'],
  ['canaryVersion', 'Canary'],
  ['score', 'Score'],
  ['reason', 'Reason'],
  ['actor', 'By'],
];

function titleFor(event: StoredEvent): string {
  const d = event.data;
  const what = event.type.startsWith('deployment.')
    ? 'Deployment'
    : event.type.startsWith('canary.')
      ? 'Canary'
      : event.type === 'channel.test'
        ? 'Test'
        : event.type === 'alert.rolled-back'
          ? 'Held alerts'
          : event.type;
  const state = str(d.verdict) ?? str(d.status) ?? str(d.phase) ?? str(d.state);
  const target = [event.server, event.version].filter(Boolean).join(' ');
  return [what, state?.toUpperCase(), target].filter(Boolean).join(' · ');
}

/** Metric lines of a canary verdict: `[{ name, canary, baseline, verdict? }]`. */
function metricLines(value: unknown): string | undefined {
  if (!Array.isArray(value)) return undefined;
  const lines = value.slice(0, 15).flatMap((m: Record<string, unknown>) => {
    if (!m || typeof m !== 'object') return [];
    const name = str(m.name) ?? str(m.metric) ?? 'metric';
    const canary = typeof m.canary === 'number' ? m.canary : typeof m.value === 'number' ? m.value : null;
    const baseline =
      typeof m.baseline === 'number' ? m.baseline : typeof m.threshold === 'number' ? m.threshold : null;
    const verdict = str(m.verdict) ?? str(m.status);
    return [
      `• ${esc(name)}: *${formatNumber(canary)}* vs baseline *${formatNumber(baseline)}*${verdict ? ` (${esc(verdict)})` : ''}`,
    ];
  });
  return lines.length > 0 ? lines.join('\n') : undefined;
}

function renderGeneric(event: StoredEvent, options: RenderOptions): SlackMessage {
  const d = event.data;
  const pairs: [string, string | undefined | null][] = [
    ['Server', event.server],
    ['Environment', event.environment],
    ['Version', event.version],
    ...DATA_FIELDS.map(([key, label]): [string, string | undefined] => {
      const v = d[key];
      return [
        label,
        key === 'weight' && typeof v === 'number'
          ? `${v}%`
          : key === 'score' && typeof v === 'number'
            ? formatNumber(v)
            : str(v),
      ];
    }),
  ];
  const url = link(options, d.comparePath) ?? link(options, d.path);
  const metrics = metricLines(d.metrics);
  const crashFree = crashFreeLine(d.sessions);
  return message(`${event.summary}${crashFree ? ` — ${crashFree}` : ''}`, [
    header(titleFor(event)),
    section(esc(event.summary)),
    crashFree ? section(esc(crashFree)) : undefined,
    fieldsBlock(pairs),
    metrics ? section(metrics) : undefined,
    url
      ? button(event.type.startsWith('deployment.') ? 'Open deployment' : 'Open comparison', url)
      : undefined,
    context([`${esc(event.type)} · ${event.occurredAt}`]),
  ]);
}

/** The Block Kit message for an event: alert groups get their own layout, the rest a common one. */
export function renderSlack(event: StoredEvent, options: RenderOptions = {}): SlackMessage {
  if ((event.type === 'alert.firing' || event.type === 'alert.resolved') && isAlertGroup(event.data)) {
    return renderAlertGroup(event, event.data, options);
  }
  return renderGeneric(event, options);
}
