import fs from 'node:fs';
import type { AlertView } from '#core/alerting/alerts.ts';
import type { RuleView } from '#core/alerting/model.ts';
import { api, query, shortTime, table, type Command, type CommandContext, type FlagSpec } from '../client.ts';

type Flags = Record<string, string | boolean | string[] | undefined>;

const RULE_FLAGS: Record<string, FlagSpec> = {
  file: {
    type: 'string',
    value: 'PATH',
    description: 'the rule as JSON (API shape); - reads stdin; flags override it',
  },
  name: { type: 'string', value: 'N', description: 'rule name, unique in the org' },
  server: { type: 'string', value: 'S', description: 'server slug' },
  kind: { type: 'string', value: 'K', description: 'threshold | relative | absence | health' },
  environment: { type: 'string', value: 'E', description: 'only this environment (default: each one)' },
  selector: { type: 'string', value: 'V', description: 'version selector: *, 1.4.0, ^1.4, stable, canary' },
  metric: {
    type: 'string',
    value: 'M',
    description:
      'errorRate | latencyP50 | latencyP95 | latencyP99 | throughput | cpu | memory | crash_free_sessions | crash_free_users | adoption',
  },
  operation: { type: 'string', value: 'OP', description: 'an operation (MCP tool), or * for one alert each' },
  comparator: { type: 'string', value: 'C', description: '> (default), >=, <, <=' },
  threshold: { type: 'string', value: 'X', description: 'threshold rules: the limit' },
  factor: { type: 'string', value: 'F', description: 'relative rules: candidate vs baseline × F (+ offset)' },
  offset: {
    type: 'string',
    value: 'D',
    description: 'relative rules: added to the baseline (error rate 0.01 = 1 point)',
  },
  baseline: {
    type: 'string',
    value: 'V',
    description: 'relative rules: baseline version (default: the stable version deployed there)',
  },
  check: { type: 'string', value: 'NAME', description: 'health rules: a check name or id (default any)' },
  interval: { type: 'string', value: 'D', description: 'evaluation interval, at least 1s (default 1m)' },
  window: { type: 'string', value: 'D', description: 'data window (default 5m)' },
  for: { type: 'string', value: 'D', description: 'pending this long before firing (default 0s)' },
  'keep-firing-for': { type: 'string', value: 'D', description: 'keep firing this long after it clears' },
  severity: { type: 'string', value: 'S', description: 'critical | warning (default) | info' },
  label: { type: 'string', multiple: true, value: 'K=V', description: 'a label; repeat for more' },
  summary: {
    type: 'string',
    value: 'TEXT',
    description: 'annotation; {{ $value }} {{ $labels.version }} fill in',
  },
  description: { type: 'string', value: 'TEXT', description: 'annotation' },
  'runbook-url': { type: 'string', value: 'URL', description: 'annotation' },
  'no-data-state': { type: 'string', value: 'S', description: 'NoData (default) | Alerting | OK | KeepLast' },
  'exec-err-state': { type: 'string', value: 'S', description: 'Error (default) | Alerting | KeepLast' },
  'group-by': {
    type: 'string',
    multiple: true,
    value: 'LABEL',
    description: 'group notifications by; ... for all',
  },
  'group-wait': { type: 'string', value: 'D', description: 'Alertmanager group_wait (default 30s)' },
  'group-interval': { type: 'string', value: 'D', description: 'group_interval (default 5m)' },
  'repeat-interval': { type: 'string', value: 'D', description: 'repeat_interval (default 4h)' },
  'during-rollout': {
    type: 'string',
    value: 'notify|hold|inhibit',
    description: "a rollout candidate's alerts: notify, hold during its canary analysis, inhibit",
  },
  'correlation-window': {
    type: 'string',
    value: 'D',
    description: 'say an alert began after a rollout step or config change this recent (default 30m)',
  },
  disabled: { type: 'boolean', description: 'create it disabled / disable it' },
  enabled: { type: 'boolean', description: 'enable it' },
};

function number(ctx: CommandContext, name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value === '' || !Number.isFinite(n)) return ctx.usage(`--${name} needs a number, got ${String(value)}`);
  return n;
}

/**
 * The rule body from `--file` and the flags (flags win). `current` (update): `--label` and the
 * annotation flags add to the rule's labels and annotations instead of replacing them all.
 */
function ruleBody(ctx: CommandContext, current?: RuleView): Record<string, unknown> {
  const f = ctx.flags as Flags;
  let body: Record<string, unknown> = {};
  if (typeof f.file === 'string') {
    const text = fs.readFileSync(f.file === '-' ? 0 : f.file, 'utf8');
    try {
      body = JSON.parse(text) as Record<string, unknown>;
    } catch {
      ctx.usage(`${f.file} is not JSON`);
    }
  }
  const set = (key: string, value: unknown) => {
    if (value !== undefined) body[key] = value;
  };
  set('name', f.name);
  set('server', f.server);
  set('kind', f.kind);
  set('environment', f.environment);
  set('version', f.selector);
  set('metric', f.metric);
  set('operation', f.operation);
  set('comparator', f.comparator);
  set('threshold', number(ctx, 'threshold', f.threshold));
  set('factor', number(ctx, 'factor', f.factor));
  set('offset', number(ctx, 'offset', f.offset));
  set('baseline', f.baseline);
  set('check', f.check);
  set('interval', f.interval);
  set('window', f.window);
  set('for', f.for);
  set('keepFiringFor', f['keep-firing-for']);
  set('severity', f.severity);
  set('noDataState', f['no-data-state']);
  set('execErrState', f['exec-err-state']);
  set('groupBy', f['group-by']);
  set('groupWait', f['group-wait']);
  set('groupInterval', f['group-interval']);
  set('repeatInterval', f['repeat-interval']);
  set('duringRollout', f['during-rollout']);
  set('correlationWindow', f['correlation-window']);
  if (f.disabled === true) body.enabled = false;
  if (f.enabled === true) body.enabled = true;
  if (Array.isArray(f.label)) {
    const labels = { ...((body.labels ?? current?.labels ?? {}) as Record<string, string>) };
    for (const pair of f.label) {
      const at = pair.indexOf('=');
      if (at < 1) ctx.usage(`--label needs KEY=VALUE, got ${pair}`);
      labels[pair.slice(0, at)] = pair.slice(at + 1);
    }
    body.labels = labels;
  }
  const annotations = { ...((body.annotations ?? current?.annotations ?? {}) as Record<string, string>) };
  if (typeof f.summary === 'string') annotations.summary = f.summary;
  if (typeof f.description === 'string') annotations.description = f.description;
  if (typeof f['runbook-url'] === 'string') annotations.runbookUrl = f['runbook-url'];
  if (Object.keys(annotations).length > 0) body.annotations = annotations;
  return body;
}

function condition(r: RuleView): string {
  const op = r.operation ? ` [${r.operation}]` : '';
  switch (r.kind) {
    case 'threshold':
      return `${r.metric}${op} ${r.comparator} ${r.threshold}`;
    case 'relative':
      return `${r.metric}${op} ${r.comparator} ${r.baseline ?? 'stable'} × ${r.factor}${r.offset ? ` + ${r.offset}` : ''}`;
    case 'absence':
      return `no requests${op} for ${r.window}`;
    default:
      return `health check ${r.check ?? '(any)'} failing`;
  }
}

function describeRule(r: RuleView): string {
  return [
    `${r.name} (${r.id})${r.enabled ? '' : ' · DISABLED'}`,
    `scope:       ${r.server} · env ${r.environment ?? 'each'} · version ${r.version}`,
    `condition:   ${condition(r)} over ${r.window}, every ${r.interval}, for ${r.for}, keep firing ${r.keepFiringFor}`,
    `severity:    ${r.severity} · no data → ${r.noDataState} · error → ${r.execErrState}`,
    `grouping:    by ${r.groupBy.join(', ') || '(none)'} · wait ${r.groupWait} · interval ${r.groupInterval} · repeat ${r.repeatInterval}`,
    `rollouts:    ${r.duringRollout} during a rollout · correlate changes within ${r.correlationWindow}`,
    ...(Object.keys(r.labels).length
      ? [
          `labels:      ${Object.entries(r.labels)
            .map(([k, v]) => `${k}=${v}`)
            .join(' ')}`,
        ]
      : []),
    ...(r.annotations.summary ? [`summary:     ${r.annotations.summary}`] : []),
    ...(r.annotations.runbookUrl ? [`runbook:     ${r.annotations.runbookUrl}`] : []),
    `evaluated:   ${shortTime(r.lastEvaluatedAt)}${r.lastEvaluationMs !== null ? ` in ${r.lastEvaluationMs.toFixed(1)} ms` : ''}${r.lastError ? ` · ERROR ${r.lastError}` : ''}`,
  ].join('\n');
}

const value = (n: number | null) => (n === null ? '-' : Number.isInteger(n) ? String(n) : n.toPrecision(3));

function alertTable(alerts: AlertView[]): string {
  return table(
    ['STATE', 'SEVERITY', 'RULE', 'SERVER', 'ENV', 'VERSION', 'VALUE', 'THRESHOLD', 'SINCE', 'ACK', 'ID'],
    alerts.map((a) => [
      a.state.toUpperCase(),
      a.severity,
      a.ruleName,
      a.server,
      a.environment ?? '-',
      a.version ?? '-',
      value(a.value),
      value(a.threshold),
      shortTime(a.stateChangedAt),
      a.acknowledgement ? a.acknowledgement.by : '-',
      a.id,
    ]),
  );
}

export const alertCommands: Command[] = [
  {
    name: 'alerts list',
    summary: 'firing, pending and recently resolved alerts (exit 1 with --fail-on-firing if any fire)',
    flags: {
      state: {
        type: 'string',
        value: 'S',
        description: 'firing,pending,resolved,nodata,error (default all but inactive)',
      },
      server: { type: 'string', value: 'S', description: 'only this server' },
      environment: { type: 'string', value: 'E', description: 'only this environment' },
      release: { type: 'string', value: 'V', description: 'only this version' },
      'fail-on-firing': { type: 'boolean', description: 'exit 1 when an alert is firing (for CI gates)' },
    },
    async run(ctx) {
      const f = ctx.flags as Flags;
      const { alerts } = await api<{ alerts: AlertView[] }>(
        ctx.client,
        'GET',
        `/alerts${query({
          state: f.state as string | undefined,
          server: f.server as string | undefined,
          environment: f.environment as string | undefined,
          version: f.release as string | undefined,
        })}`,
      );
      ctx.print(alerts, alerts.length ? alertTable(alerts) : 'no alerts');
      return f['fail-on-firing'] === true && alerts.some((a) => a.state === 'firing') ? 1 : 0;
    },
  },
  {
    name: 'alerts show',
    args: ['<id>'],
    summary: 'an alert with its labels, annotations and state history',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const alert = await api<
        AlertView & {
          history: { from: string; to: string; at: string; reason: string; value: number | null }[];
        }
      >(ctx.client, 'GET', `/alerts/${encodeURIComponent(id)}`);
      const lines = [
        `${alert.state.toUpperCase()} ${alert.ruleName} · ${alert.severity} · ${alert.server} ${alert.environment ?? ''} ${alert.version ?? ''}`.trim(),
        `value ${value(alert.value)} against ${value(alert.threshold)}${alert.baselineVersion ? ` (baseline ${alert.baselineVersion})` : ''}`,
        `labels: ${Object.entries(alert.labels)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
        ...Object.entries(alert.annotations).map(([k, v]) => `${k}: ${v}`),
        ...(alert.acknowledgement
          ? [
              `acknowledged by ${alert.acknowledgement.by} at ${shortTime(alert.acknowledgement.at)}: ${alert.acknowledgement.comment ?? ''}`,
            ]
          : []),
        'history:',
        ...alert.history.map(
          (h) => `  ${shortTime(h.at)}  ${h.from} → ${h.to}  ${value(h.value)}  ${h.reason}`,
        ),
      ];
      ctx.print(alert, lines.join('\n'));
    },
  },
  {
    name: 'alerts ack',
    args: ['<id>'],
    summary: 'acknowledge a firing alert: it is not repeated until it resolves',
    flags: { comment: { type: 'string', value: 'TEXT', description: 'why, or what is being done' } },
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const alert = await api<AlertView>(
        ctx.client,
        'POST',
        `/alerts/${encodeURIComponent(id)}/acknowledge`,
        {
          comment: (ctx.flags.comment as string | undefined) ?? null,
        },
      );
      ctx.print(alert, `acknowledged ${alert.ruleName} (${alert.id})`);
    },
  },
  {
    name: 'alerts history',
    summary: 'alert state changes per server, version or rule, newest first',
    flags: {
      server: { type: 'string', value: 'S', description: 'only this server' },
      release: { type: 'string', value: 'V', description: 'only this version' },
      environment: { type: 'string', value: 'E', description: 'only this environment' },
      rule: { type: 'string', value: 'R', description: 'rule name or id' },
      since: { type: 'string', value: 'TIME', description: 'RFC 3339' },
      limit: { type: 'string', value: 'N', description: 'at most N events (default 100)' },
    },
    async run(ctx) {
      const f = ctx.flags as Flags;
      const { events } = await api<{
        events: {
          at: string;
          ruleName: string;
          server: string;
          environment: string | null;
          version: string | null;
          from: string;
          to: string;
          value: number | null;
          reason: string;
        }[];
      }>(
        ctx.client,
        'GET',
        `/alerts/history${query({
          server: f.server as string | undefined,
          version: f.release as string | undefined,
          environment: f.environment as string | undefined,
          rule: f.rule as string | undefined,
          since: f.since as string | undefined,
          limit: f.limit as string | undefined,
        })}`,
      );
      ctx.print(
        events,
        events.length
          ? table(
              ['AT', 'RULE', 'SERVER', 'ENV', 'VERSION', 'CHANGE', 'VALUE', 'REASON'],
              events.map((e) => [
                shortTime(e.at),
                e.ruleName,
                e.server,
                e.environment ?? '-',
                e.version ?? '-',
                `${e.from} → ${e.to}`,
                value(e.value),
                e.reason,
              ]),
            )
          : 'no alert history',
      );
    },
  },
  {
    name: 'alert-rules list',
    summary: 'list alert rules',
    flags: { server: { type: 'string', value: 'S', description: 'only this server' } },
    async run(ctx) {
      const { rules } = await api<{ rules: RuleView[] }>(
        ctx.client,
        'GET',
        `/alert-rules${query({ server: ctx.flags.server as string | undefined })}`,
      );
      ctx.print(
        rules,
        rules.length
          ? table(
              ['NAME', 'SERVER', 'ENV', 'VERSION', 'CONDITION', 'EVERY', 'FOR', 'SEVERITY', 'ENABLED', 'ID'],
              rules.map((r) => [
                r.name,
                r.server,
                r.environment ?? '*',
                r.version,
                condition(r),
                r.interval,
                r.for,
                r.severity,
                r.enabled ? 'yes' : 'no',
                r.id,
              ]),
            )
          : 'no alert rules',
      );
    },
  },
  {
    name: 'alert-rules show',
    args: ['<id>'],
    summary: 'show an alert rule',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const rule = await api<RuleView>(ctx.client, 'GET', `/alert-rules/${encodeURIComponent(id)}`);
      ctx.print(rule, describeRule(rule));
    },
  },
  {
    name: 'alert-rules create',
    summary: 'create an alert rule from flags and/or --file rule.json',
    flags: RULE_FLAGS,
    async run(ctx) {
      const rule = await api<RuleView>(ctx.client, 'POST', '/alert-rules', ruleBody(ctx));
      ctx.print(rule, `created alert rule ${rule.name} (${rule.id})\n${describeRule(rule)}`);
    },
  },
  {
    name: 'alert-rules update',
    args: ['<id>'],
    summary: 'change an alert rule: only the fields given (--label and annotations add to the ones it has)',
    flags: RULE_FLAGS,
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const f = ctx.flags as Flags;
      const path = `/alert-rules/${encodeURIComponent(id)}`;
      const adds =
        Array.isArray(f.label) ||
        ['summary', 'description', 'runbook-url'].some((k) => typeof f[k] === 'string');
      const current = adds ? await api<RuleView>(ctx.client, 'GET', path) : undefined;
      const rule = await api<RuleView>(ctx.client, 'PATCH', path, ruleBody(ctx, current));
      ctx.print(rule, `updated alert rule ${rule.name}\n${describeRule(rule)}`);
    },
  },
  {
    name: 'alert-rules delete',
    args: ['<id>'],
    summary: 'delete an alert rule; its firing alerts resolve',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const rule = await api<RuleView>(ctx.client, 'DELETE', `/alert-rules/${encodeURIComponent(id)}`);
      ctx.print(rule, `deleted alert rule ${rule.name}`);
    },
  },
  {
    name: 'alert-rules evaluate',
    args: ['<id>'],
    summary: 'evaluate a rule now and print what changed (exit 1 if an alert is firing)',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const result = await api<{
        series: number;
        error: string | null;
        skipped: string | null;
        transitions: { labels: Record<string, string>; from: string; to: string; value: number | null }[];
        alerts: AlertView[];
      }>(ctx.client, 'POST', `/alert-rules/${encodeURIComponent(id)}/evaluate`);
      const lines = [
        result.skipped
          ? `skipped: ${result.skipped}`
          : `${result.series} series${result.error ? ` · ERROR ${result.error}` : ''}`,
        ...result.transitions.map((t) =>
          `${t.from} → ${t.to}  ${t.labels.version ?? ''} ${t.labels.environment ?? ''} ${t.labels.operation ?? ''} ${value(t.value)}`.trimEnd(),
        ),
        ...(result.alerts.length ? [alertTable(result.alerts)] : ['no active alerts']),
      ];
      ctx.print(result, lines.join('\n'));
      return result.alerts.some((a) => a.state === 'firing') ? 1 : 0;
    },
  },
];
