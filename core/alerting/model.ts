/**
 * What an alert rule is: its kinds, metrics and settings, the validation that turns input into
 * rule fields (with defaults), and how a rule is shown. Pure; the store is rules.ts, the
 * evaluation engine.ts.
 */
import semver from 'semver';
import { BadRequestError } from '../errors.ts';
import { formatDuration, parseDuration } from './durations.ts';

export const RULE_KINDS = ['threshold', 'relative', 'absence', 'health'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];
export const METRICS = [
  'errorRate',
  'latencyP50',
  'latencyP95',
  'latencyP99',
  'throughput',
  'cpu',
  'memory',
  'crash_free_sessions',
  'crash_free_users',
  'adoption',
] as const;
export type Metric = (typeof METRICS)[number];
export const COMPARATORS = ['>', '>=', '<', '<='] as const;
export type Comparator = (typeof COMPARATORS)[number];
export const SEVERITIES = ['critical', 'warning', 'info'] as const;
export type Severity = (typeof SEVERITIES)[number];
export const NO_DATA_STATES = ['NoData', 'Alerting', 'OK', 'KeepLast'] as const;
export type NoDataState = (typeof NO_DATA_STATES)[number];
export const EXEC_ERR_STATES = ['Error', 'Alerting', 'KeepLast'] as const;
export type ExecErrState = (typeof EXEC_ERR_STATES)[number];
/**
 * What a rule does with alerts of a version that is the candidate of an active rollout: notify as
 * always; hold them while a canary analysis of that rollout runs (its verdict decides: a rollback
 * resolves them, a pass or no verdict sends what still fires); inhibit them for the whole rollout.
 */
export const DURING_ROLLOUT = ['notify', 'hold', 'inhibit'] as const;
export type DuringRollout = (typeof DURING_ROLLOUT)[number];

/** Metrics read from process resources: per process, so never per operation. */
export const RESOURCE_METRICS: readonly Metric[] = ['cpu', 'memory'];
/** Metrics read from the sessions of release health: per version, so never per operation. */
export const SESSION_METRICS: readonly Metric[] = ['crash_free_sessions', 'crash_free_users', 'adoption'];

/** How each metric reads in messages, with its unit. */
export const METRIC_NAMES: Record<Metric, string> = {
  errorRate: 'error rate',
  latencyP50: 'p50 latency (ms)',
  latencyP95: 'p95 latency (ms)',
  latencyP99: 'p99 latency (ms)',
  throughput: 'throughput (req/s)',
  cpu: 'CPU utilization',
  memory: 'memory (bytes)',
  crash_free_sessions: 'crash-free sessions',
  crash_free_users: 'crash-free users',
  adoption: 'adoption (share of sessions)',
};

/** Labels every instance carries; a rule cannot set them itself. */
export const RESERVED_LABELS = [
  'alertname',
  'server',
  'environment',
  'version',
  'operation',
  'check',
  'severity',
];
const LABEL_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MAX_WINDOW_MS = 86_400_000;

export interface Annotations {
  summary?: string;
  description?: string;
  runbookUrl?: string;
}

/** What the API and CLI send; durations as text (`30s`, `5m`). */
export interface RuleInput {
  name: string;
  server: string;
  environment?: string | null;
  version?: string;
  kind: RuleKind;
  metric?: Metric | null;
  operation?: string | null;
  comparator?: Comparator;
  threshold?: number | null;
  factor?: number | null;
  offset?: number | null;
  baseline?: string | null;
  minRequests?: number;
  check?: string | null;
  interval?: string;
  window?: string;
  for?: string;
  keepFiringFor?: string;
  severity?: Severity;
  labels?: Record<string, string>;
  annotations?: Annotations;
  noDataState?: NoDataState;
  execErrState?: ExecErrState;
  groupBy?: string[];
  groupWait?: string;
  groupInterval?: string;
  repeatInterval?: string;
  duringRollout?: DuringRollout;
  /** An alert that begins this soon after a rollout step or configuration change says so; 0s: never. */
  correlationWindow?: string;
  enabled?: boolean;
}

/** The kind-specific part of a rule, stored as `condition`. */
export interface Condition {
  metric: Metric | null;
  /** null: every operation together; `*`: one instance per operation; else that operation only. */
  operation: string | null;
  comparator: Comparator;
  threshold: number | null;
  /** Relative rules: candidate compared with baseline × factor + offset. */
  factor: number | null;
  offset: number | null;
  /** Relative rules: a version, or null for the stable version running in the environment. */
  baseline: string | null;
  /**
   * Series with fewer requests in the window count as no data; for session metrics, fewer finished
   * sessions (crash_free_sessions), users with one (crash_free_users) or sessions of the environment (adoption).
   */
  minRequests: number;
  /** Health rules: the check's name, or null for any check in scope. */
  check: string | null;
}

/** A validated rule, as evaluation reads it. Durations in milliseconds. */
export interface Rule {
  id: string;
  orgId: string;
  name: string;
  server: string;
  environment: string | null;
  version: string;
  kind: RuleKind;
  condition: Condition;
  intervalMs: number;
  windowMs: number;
  forMs: number;
  keepFiringForMs: number;
  severity: Severity;
  labels: Record<string, string>;
  annotations: Annotations;
  noDataState: NoDataState;
  execErrState: ExecErrState;
  groupBy: string[];
  groupWaitMs: number;
  groupIntervalMs: number;
  repeatIntervalMs: number;
  duringRollout: DuringRollout;
  correlationWindowMs: number;
  enabled: boolean;
  createdBy: string;
  createdAt: Date;
  updatedAt: Date;
  lastEvaluatedAt: Date | null;
  lastEvalDurationMs: number | null;
  lastError: string | null;
  evaluations: number;
}

export type RuleFields = Omit<
  Rule,
  | 'id'
  | 'orgId'
  | 'createdBy'
  | 'createdAt'
  | 'updatedAt'
  | 'lastEvaluatedAt'
  | 'lastEvalDurationMs'
  | 'lastError'
  | 'evaluations'
>;

export const DEFAULTS = {
  version: '*',
  interval: '1m',
  window: '5m',
  for: '0s',
  keepFiringFor: '0s',
  severity: 'warning' as Severity,
  noDataState: 'NoData' as NoDataState,
  execErrState: 'Error' as ExecErrState,
  comparator: '>' as Comparator,
  minRequests: 1,
  groupBy: ['alertname', 'server', 'environment'],
  // Alertmanager's defaults.
  groupWait: '30s',
  groupInterval: '5m',
  repeatInterval: '4h',
  duringRollout: 'notify' as DuringRollout,
  correlationWindow: '30m',
};

const bad = (detail: string) => new BadRequestError(detail, 'invalid-alert-rule');

function duration(field: string, text: string | undefined, fallback: string, min: number, max: number) {
  const value = text ?? fallback;
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined) throw bad(`${field} "${value}" is not a duration, e.g. 30s, 5m, 1h or 1h30m`);
  if (ms < min) throw bad(`${field} must be at least ${formatDuration(min)}, got ${value}`);
  if (ms > max) throw bad(`${field} must be at most ${formatDuration(max)}, got ${value}`);
  return ms;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[], fallback?: T): T {
  const v = value ?? fallback;
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw bad(`${field} must be one of ${allowed.join(', ')}${v === undefined ? '' : `, got ${String(v)}`}`);
  }
  return v as T;
}

function finite(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`${field} must be a number`);
  return value;
}

/** `*`, `stable`, `canary`, an exact version or a semver range; anything else is refused. */
export function checkVersionSelector(selector: string): string {
  const s = selector.trim();
  if (s === '*' || s === 'stable' || s === 'canary') return s;
  if (semver.valid(s)) return s;
  if (s.length > 0 && s.length <= 256 && semver.validRange(s)) return s;
  throw bad(
    `version "${selector}" is not a version selector: use *, an exact version (1.4.0), a semver range (^1.4, >=1.2.0 <2) or stable / canary`,
  );
}

/** Whether `version` (as telemetry reports it) falls under an exact / range / `*` selector. */
export function versionMatches(selector: string, version: string): boolean {
  if (selector === '*') return true;
  if (semver.valid(selector)) return version === selector;
  if (!semver.valid(version)) return false;
  return semver.satisfies(version, selector, { includePrerelease: true });
}

function labelsOf(input: unknown): Record<string, string> {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw bad('labels must be an object of strings');
  const entries = Object.entries(input as Record<string, unknown>);
  if (entries.length > 32) throw bad('a rule may have at most 32 labels');
  for (const [name, value] of entries) {
    if (!LABEL_NAME.test(name) || name.length > 100) {
      throw bad(`label name "${name}" must start with a letter or _ and hold only letters, digits and _`);
    }
    if (RESERVED_LABELS.includes(name)) {
      throw bad(`label ${name} is set by Pylee on every alert; choose another name`);
    }
    if (typeof value !== 'string' || value.length > 1024) {
      throw bad(`label ${name} must be a string of at most 1024 characters`);
    }
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

function annotationsOf(input: unknown): Annotations {
  if (input === undefined || input === null) return {};
  if (typeof input !== 'object' || Array.isArray(input)) throw bad('annotations must be an object');
  const out: Annotations = {};
  for (const [name, value] of Object.entries(input as Record<string, unknown>)) {
    if (!['summary', 'description', 'runbookUrl'].includes(name)) {
      throw bad(`annotation ${name} is not known; use summary, description or runbookUrl`);
    }
    if (value === undefined || value === null) continue;
    if (typeof value !== 'string' || value.length > 4000) {
      throw bad(`annotation ${name} must be a string of at most 4000 characters`);
    }
    if (name === 'runbookUrl' && !/^https?:\/\/\S+$/.test(value)) {
      throw bad(`runbookUrl must be an http(s) URL, got ${value}`);
    }
    out[name as keyof Annotations] = value;
  }
  return out;
}

function text(field: string, value: unknown, max: number): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > max) {
    throw bad(`${field} must be a non-empty string of at most ${max} characters`);
  }
  return value.trim();
}

const optionalText = (field: string, value: unknown, max: number) =>
  value === undefined || value === null ? null : text(field, value, max);

/** Checks a whole rule and fills in defaults. Every mistake is a 400 that names the field. */
export function validateRule(input: RuleInput): RuleFields {
  if (typeof input !== 'object' || input === null) throw bad('a rule must be an object');
  const kind = oneOf('kind', input.kind, RULE_KINDS);
  const name = text('name', input.name, 200);
  const server = text('server', input.server, 255);
  const environment = optionalText('environment', input.environment, 64);
  const version = checkVersionSelector(text('version', input.version ?? DEFAULTS.version, 256));

  const condition: Condition = {
    metric: null,
    operation: optionalText('operation', input.operation, 512),
    comparator: oneOf('comparator', input.comparator, COMPARATORS, DEFAULTS.comparator),
    threshold: null,
    factor: null,
    offset: null,
    baseline: null,
    minRequests: DEFAULTS.minRequests,
    check: null,
  };
  if (input.minRequests !== undefined) {
    if (!Number.isSafeInteger(input.minRequests) || input.minRequests < 1) {
      throw bad('minRequests must be a whole number of at least 1');
    }
    condition.minRequests = input.minRequests;
  }
  if (kind === 'threshold' || kind === 'relative') {
    condition.metric = oneOf('metric', input.metric, METRICS);
    if (condition.operation !== null && RESOURCE_METRICS.includes(condition.metric)) {
      throw bad(`${condition.metric} is measured per process, not per operation: remove operation`);
    }
    if (condition.operation !== null && SESSION_METRICS.includes(condition.metric)) {
      throw bad(
        `${condition.metric} is measured over sessions of a version, not per operation: remove operation`,
      );
    }
  } else if (input.metric !== undefined && input.metric !== null) {
    throw bad(`a ${kind} rule has no metric`);
  }
  if (kind === 'threshold') {
    if (input.threshold === undefined || input.threshold === null)
      throw bad('a threshold rule needs threshold');
    condition.threshold = finite('threshold', input.threshold);
  } else if (input.threshold !== undefined && input.threshold !== null) {
    throw bad(
      kind === 'relative'
        ? 'a relative rule compares with its baseline: use factor and/or offset instead of threshold'
        : `a ${kind} rule has no threshold`,
    );
  }
  if (kind === 'relative') {
    const hasFactor = input.factor !== undefined && input.factor !== null;
    const hasOffset = input.offset !== undefined && input.offset !== null;
    if (!hasFactor && !hasOffset) {
      throw bad('a relative rule needs factor (e.g. 1.2 for 20 % above the baseline) and/or offset');
    }
    condition.factor = hasFactor ? finite('factor', input.factor) : 1;
    condition.offset = hasOffset ? finite('offset', input.offset) : 0;
    if (condition.factor <= 0) throw bad('factor must be above 0');
    if (input.baseline !== undefined && input.baseline !== null) {
      const baseline = text('baseline', input.baseline, 256);
      if (!semver.valid(baseline)) throw bad(`baseline ${baseline} must be an exact version such as 1.4.0`);
      condition.baseline = baseline;
    }
    if (version === 'stable')
      throw bad('a relative rule compares candidates with stable: choose another version');
  } else {
    for (const field of ['factor', 'offset', 'baseline'] as const) {
      if (input[field] !== undefined && input[field] !== null)
        throw bad(`${field} applies to relative rules only`);
    }
  }
  if (kind === 'health') {
    condition.check = optionalText('check', input.check, 200);
    if (condition.operation !== null) throw bad('a health rule has no operation');
  } else if (input.check !== undefined && input.check !== null) {
    throw bad('check applies to health rules only');
  }

  const severity = oneOf('severity', input.severity, SEVERITIES, DEFAULTS.severity);
  const noDataState = oneOf('noDataState', input.noDataState, NO_DATA_STATES, DEFAULTS.noDataState);
  const execErrState = oneOf('execErrState', input.execErrState, EXEC_ERR_STATES, DEFAULTS.execErrState);
  const groupBy = input.groupBy ?? DEFAULTS.groupBy;
  if (!Array.isArray(groupBy) || groupBy.length > 20) throw bad('groupBy must be a list of label names');
  for (const label of groupBy) {
    if (label !== '...' && (typeof label !== 'string' || !LABEL_NAME.test(label))) {
      throw bad(`groupBy entry "${String(label)}" is not a label name (or ... for every label)`);
    }
  }
  if (typeof input.enabled !== 'undefined' && typeof input.enabled !== 'boolean') {
    throw bad('enabled must be true or false');
  }

  return {
    name,
    server,
    environment,
    version,
    kind,
    condition,
    intervalMs: duration('interval', input.interval, DEFAULTS.interval, 1000, MAX_WINDOW_MS),
    windowMs: duration('window', input.window, DEFAULTS.window, 1000, MAX_WINDOW_MS),
    forMs: duration('for', input.for, DEFAULTS.for, 0, 7 * MAX_WINDOW_MS),
    keepFiringForMs: duration(
      'keepFiringFor',
      input.keepFiringFor,
      DEFAULTS.keepFiringFor,
      0,
      7 * MAX_WINDOW_MS,
    ),
    severity,
    labels: labelsOf(input.labels),
    annotations: annotationsOf(input.annotations),
    noDataState,
    execErrState,
    groupBy: [...new Set(groupBy)],
    groupWaitMs: duration('groupWait', input.groupWait, DEFAULTS.groupWait, 0, MAX_WINDOW_MS),
    groupIntervalMs: duration(
      'groupInterval',
      input.groupInterval,
      DEFAULTS.groupInterval,
      1000,
      MAX_WINDOW_MS,
    ),
    repeatIntervalMs: duration(
      'repeatInterval',
      input.repeatInterval,
      DEFAULTS.repeatInterval,
      1000,
      30 * MAX_WINDOW_MS,
    ),
    duringRollout: oneOf('duringRollout', input.duringRollout, DURING_ROLLOUT, DEFAULTS.duringRollout),
    correlationWindowMs: duration(
      'correlationWindow',
      input.correlationWindow,
      DEFAULTS.correlationWindow,
      0,
      MAX_WINDOW_MS,
    ),
    enabled: input.enabled ?? true,
  };
}

/** The JSON a rule is shown as: the input's shape with defaults filled in, plus evaluation status. */
export function ruleView(rule: Rule) {
  const c = rule.condition;
  return {
    id: rule.id,
    name: rule.name,
    server: rule.server,
    environment: rule.environment,
    version: rule.version,
    kind: rule.kind,
    metric: c.metric,
    operation: c.operation,
    comparator: c.comparator,
    threshold: c.threshold,
    factor: c.factor,
    offset: c.offset,
    baseline: c.baseline,
    minRequests: c.minRequests,
    check: c.check,
    interval: formatDuration(rule.intervalMs),
    window: formatDuration(rule.windowMs),
    for: formatDuration(rule.forMs),
    keepFiringFor: formatDuration(rule.keepFiringForMs),
    severity: rule.severity,
    labels: rule.labels,
    annotations: rule.annotations,
    noDataState: rule.noDataState,
    execErrState: rule.execErrState,
    groupBy: rule.groupBy,
    groupWait: formatDuration(rule.groupWaitMs),
    groupInterval: formatDuration(rule.groupIntervalMs),
    repeatInterval: formatDuration(rule.repeatIntervalMs),
    duringRollout: rule.duringRollout,
    correlationWindow: formatDuration(rule.correlationWindowMs),
    enabled: rule.enabled,
    createdBy: rule.createdBy,
    createdAt: rule.createdAt.toISOString(),
    updatedAt: rule.updatedAt.toISOString(),
    lastEvaluatedAt: rule.lastEvaluatedAt?.toISOString() ?? null,
    lastEvaluationMs: rule.lastEvalDurationMs,
    lastError: rule.lastError,
    evaluations: rule.evaluations,
  };
}
export type RuleView = ReturnType<typeof ruleView>;

/** The input that reproduces a rule: what a PATCH merges into. */
export function inputOf(rule: Rule): RuleInput {
  const { id: _id, createdBy: _c, createdAt: _a, updatedAt: _u, ...view } = ruleView(rule);
  const input: Record<string, unknown> = { ...view };
  for (const key of ['lastEvaluatedAt', 'lastEvaluationMs', 'lastError', 'evaluations']) delete input[key];
  // Relative rules store defaults for factor/offset; other kinds must not send them back.
  if (rule.kind !== 'relative') for (const key of ['factor', 'offset', 'baseline']) delete input[key];
  return input as unknown as RuleInput;
}
