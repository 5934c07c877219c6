import { createHash } from 'node:crypto';
import type { AlertNotice, CorrelationNotice, RolloutNotice, SessionsNotice } from '../notify/events.ts';
import { sessionsNotice } from '../notify/sessions.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { METRIC_NAMES, type Annotations, type Rule } from './model.ts';
import type { SeriesKey } from './samples.ts';

/** Stable per rule + series: the same instance gets the same fingerprint at every evaluation. */
export function fingerprintOf(ruleId: string, key: SeriesKey): string {
  const text = JSON.stringify([ruleId, key.environment, key.version, key.operation]);
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** The label set of an instance: Pylee's own labels, then the rule's. */
export function instanceLabels(rule: Rule, key: SeriesKey): Record<string, string> {
  const labels: Record<string, string> = {
    alertname: rule.name,
    server: rule.server,
    severity: rule.severity,
  };
  if (key.environment !== null) labels.environment = key.environment;
  if (key.version !== null) labels.version = key.version;
  if (key.operation !== null) labels[rule.kind === 'health' ? 'check' : 'operation'] = key.operation;
  return { ...labels, ...rule.labels };
}

/**
 * Fills Prometheus-style placeholders: `{{ $value }}`, `{{ $threshold }}`, `{{ $labels.version }}`.
 * Unknown placeholders are left as written so a typo is visible in the message.
 */
export function renderTemplate(
  template: string,
  values: { value: number | null; threshold: number | null; labels: Record<string, string> },
): string {
  return template.replace(
    /\{\{\s*\$(value|threshold|labels\.([A-Za-z_][A-Za-z0-9_]*))\s*\}\}/g,
    (all, what, label) => {
      if (what === 'value') return formatNumber(values.value);
      if (what === 'threshold') return formatNumber(values.threshold);
      return values.labels[label as string] ?? all;
    },
  );
}

function formatNumber(n: number | null): string {
  if (n === null) return 'n/a';
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(4)));
}

function renderAnnotations(
  annotations: Annotations,
  values: Parameters<typeof renderTemplate>[1],
): Annotations {
  const out: Annotations = {};
  for (const [name, text] of Object.entries(annotations) as [keyof Annotations, string][]) {
    out[name] = name === 'runbookUrl' ? text : renderTemplate(text, values);
  }
  return out;
}

export interface InstanceSnapshot {
  fingerprint: string;
  key: SeriesKey;
  labels: Record<string, string>;
  value: number | null;
  threshold: number | null;
  baselineVersion: string | null;
  firedAt: number | null;
  resolvedAt: number | null;
  rollout?: RolloutNotice | null;
  correlation?: CorrelationNotice[] | null;
  resolution?: string | null;
}

/** What a notification says about one alert (core/notify renders it to Slack and webhooks). */
export function noticeOf(rule: Rule, instance: InstanceSnapshot, status: 'firing' | 'resolved'): AlertNotice {
  const { key } = instance;
  const values = { value: instance.value, threshold: instance.threshold, labels: instance.labels };
  const annotations = renderAnnotations(rule.annotations, values);
  if (!annotations.summary) annotations.summary = defaultSummary(rule, instance);
  let comparePath: string | null = null;
  if (key.version !== null) {
    const query = new URLSearchParams({ candidate: key.version });
    if (instance.baselineVersion) query.set('baseline', instance.baselineVersion);
    if (key.environment) query.set('environment', key.environment);
    comparePath = `/servers/${encodeURIComponent(rule.server)}/compare?${query.toString()}`;
  }
  return {
    fingerprint: instance.fingerprint,
    ruleId: rule.id,
    ruleName: rule.name,
    status,
    severity: rule.severity,
    server: rule.server,
    environment: key.environment,
    version: key.version,
    operation: key.operation,
    labels: instance.labels,
    annotations,
    value: instance.value,
    threshold: instance.threshold,
    metric: rule.condition.metric
      ? METRIC_NAMES[rule.condition.metric]
      : rule.kind === 'health'
        ? 'failed runs in the window'
        : 'requests in the window',
    baselineVersion: instance.baselineVersion,
    startsAt: new Date(instance.firedAt ?? Date.now()).toISOString(),
    endsAt:
      status === 'resolved' && instance.resolvedAt !== null
        ? new Date(instance.resolvedAt).toISOString()
        : null,
    comparePath,
    rollout: instance.rollout ?? null,
    correlation: instance.correlation ?? [],
    resolution: status === 'resolved' ? (instance.resolution ?? null) : null,
  };
}

function defaultSummary(rule: Rule, instance: InstanceSnapshot): string {
  const where = [rule.server, instance.key.environment, instance.key.version, instance.key.operation]
    .filter(Boolean)
    .join(' ');
  const c = rule.condition;
  if (rule.kind === 'health') {
    return `${where}: health check failing (${formatNumber(instance.value)} failed runs in the last ${rule.windowMs / 1000} s)`;
  }
  if (rule.kind === 'absence') {
    return `${where}: ${formatNumber(instance.value)} requests in the last ${rule.windowMs / 1000} s`;
  }
  const metric = c.metric ? METRIC_NAMES[c.metric] : 'value';
  const against =
    rule.kind === 'relative'
      ? `${formatNumber(instance.threshold)} (baseline ${instance.baselineVersion ?? '?'} × ${c.factor ?? 1}${c.offset ? ` + ${c.offset}` : ''})`
      : formatNumber(instance.threshold);
  return `${where}: ${metric} ${formatNumber(instance.value)} ${c.comparator} ${against}`;
}

/**
 * Sets each notice's `sessions`: the crash-free sessions of its version (and of the baseline a
 * relative rule judges against) in its environment over the rule's window before `now`. One read
 * per version and environment; null without a version and environment, without sessions, or when
 * the warehouse fails (the notification goes out without them rather than not at all).
 */
export async function attachSessions(
  warehouse: Warehouse,
  rule: Pick<Rule, 'orgId' | 'server' | 'windowMs'>,
  notices: AlertNotice[],
  now: number,
): Promise<void> {
  const reads = new Map<string, Promise<SessionsNotice | null>>();
  for (const notice of notices) {
    const { environment, version, baselineVersion } = notice;
    if (environment === null || version === null) {
      notice.sessions = null;
      continue;
    }
    const key = JSON.stringify([environment, version, baselineVersion]);
    let read = reads.get(key);
    if (!read) {
      read = sessionsNotice(warehouse, {
        orgId: rule.orgId,
        server: rule.server,
        environment,
        version,
        baseline: baselineVersion,
        from: now - rule.windowMs,
        to: now,
      }).catch(() => null);
      reads.set(key, read);
    }
    notice.sessions = await read;
  }
}
