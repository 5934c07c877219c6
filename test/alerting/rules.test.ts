import { describe, expect, it } from 'vitest';
import { formatDuration, parseDuration } from '#core/alerting/durations.ts';
import { groupOf } from '#core/alerting/groups.ts';
import { fingerprintOf, renderTemplate } from '#core/alerting/notices.ts';
import { checkVersionSelector, validateRule, versionMatches, type RuleInput } from '#core/alerting/model.ts';
import { BadRequestError } from '#core/errors.ts';

const base: RuleInput = {
  name: 'High error rate',
  server: 'weather',
  kind: 'threshold',
  metric: 'errorRate',
  threshold: 0.05,
};
const refused = (patch: Partial<RuleInput> | Record<string, unknown>) => {
  try {
    validateRule({ ...base, ...patch } as RuleInput);
  } catch (error) {
    expect(error).toBeInstanceOf(BadRequestError);
    expect((error as BadRequestError).code).toBe('invalid-alert-rule');
    return (error as Error).message;
  }
  throw new Error('accepted');
};

describe('rule validation', () => {
  it('fills in Grafana / Alertmanager defaults', () => {
    expect(validateRule(base)).toMatchObject({
      version: '*',
      environment: null,
      intervalMs: 60_000,
      windowMs: 300_000,
      forMs: 0,
      keepFiringForMs: 0,
      severity: 'warning',
      noDataState: 'NoData',
      execErrState: 'Error',
      groupBy: ['alertname', 'server', 'environment'],
      groupWaitMs: 30_000,
      groupIntervalMs: 300_000,
      repeatIntervalMs: 14_400_000,
      condition: { metric: 'errorRate', comparator: '>', threshold: 0.05, operation: null, minRequests: 1 },
      enabled: true,
    });
  });

  it('takes relative rules with factor and/or offset', () => {
    const r = validateRule({
      ...base,
      kind: 'relative',
      metric: 'latencyP95',
      threshold: null,
      factor: 1.2,
      version: 'canary',
    });
    expect(r.condition).toMatchObject({ factor: 1.2, offset: 0, baseline: null });
    const o = validateRule({
      ...base,
      kind: 'relative',
      threshold: undefined,
      offset: 0.01,
      baseline: '1.4.0',
    });
    expect(o.condition).toMatchObject({ factor: 1, offset: 0.01, baseline: '1.4.0' });
  });

  it('refuses bad input with a sentence naming the field', () => {
    expect(refused({ interval: '500ms' })).toMatch(/interval must be at least 1s/);
    expect(refused({ interval: 'often' })).toMatch(/interval "often" is not a duration/);
    expect(refused({ metric: 'p95' })).toMatch(/metric must be one of errorRate/);
    expect(refused({ threshold: undefined })).toMatch(/needs threshold/);
    expect(refused({ kind: 'relative', threshold: undefined })).toMatch(/factor .* and\/or offset/);
    expect(refused({ kind: 'relative', threshold: 2, factor: 2 })).toMatch(
      /use factor and\/or offset instead/,
    );
    expect(refused({ version: 'latest-ish' })).toMatch(/not a version selector/);
    expect(refused({ metric: 'cpu', operation: 'tools/call x' })).toMatch(/per process/);
    expect(refused({ labels: { severity: 'page' } })).toMatch(/set by Pylee/);
    expect(refused({ labels: { 'team-name': 'x' } })).toMatch(/label name/);
    expect(refused({ annotations: { runbookUrl: 'wiki/page' } })).toMatch(/http\(s\) URL/);
    expect(refused({ annotations: { title: 'x' } } as never)).toMatch(/annotation title is not known/);
    expect(refused({ noDataState: 'Maybe' } as never)).toMatch(
      /noDataState must be one of NoData, Alerting, OK, KeepLast/,
    );
    expect(refused({ execErrState: 'OK' } as never)).toMatch(
      /execErrState must be one of Error, Alerting, KeepLast/,
    );
    expect(refused({ severity: 'page' } as never)).toMatch(/severity must be one of critical, warning, info/);
    expect(refused({ groupBy: ['a-b'] })).toMatch(/groupBy entry/);
    expect(refused({ factor: 2 })).toMatch(/relative rules only/);
    expect(refused({ kind: 'absence', metric: 'errorRate', threshold: undefined })).toMatch(
      /absence rule has no metric/,
    );
    expect(refused({ name: ' ' })).toMatch(/name must be a non-empty string/);
    expect(refused({ minRequests: 0 })).toMatch(/minRequests/);
  });
});

describe('version selectors', () => {
  it('match exactly, by range, or everything', () => {
    expect(checkVersionSelector('^1.4')).toBe('^1.4');
    expect(versionMatches('*', 'main-abc123')).toBe(true);
    expect(versionMatches('1.4.0', '1.4.0')).toBe(true);
    expect(versionMatches('1.4.0', '1.4.1')).toBe(false);
    expect(versionMatches('^1.4', '1.9.0')).toBe(true);
    expect(versionMatches('^1.4', '2.0.0')).toBe(false);
    expect(versionMatches('>=1.0.0 <2', '1.5.0-rc.1')).toBe(true);
    expect(versionMatches('^1.4', 'not-semver')).toBe(false);
  });
});

describe('durations, fingerprints, groups, templates', () => {
  it('parse and format Prometheus durations', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('0s')).toBe(0);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('5 m')).toBeUndefined();
    expect(parseDuration('')).toBeUndefined();
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(0)).toBe('0s');
  });

  it('gives an instance the same fingerprint every time, and another series another', () => {
    const key = { environment: 'production', version: '1.0.0', operation: null };
    expect(fingerprintOf('r1', key)).toBe(fingerprintOf('r1', { ...key }));
    expect(fingerprintOf('r1', key)).not.toBe(fingerprintOf('r1', { ...key, version: '1.0.1' }));
    expect(fingerprintOf('r1', key)).not.toBe(fingerprintOf('r2', key));
  });

  it('groups by the chosen labels, or all of them with ...', () => {
    const labels = { alertname: 'A', server: 's', environment: 'prod', version: '1' };
    expect(groupOf(['server', 'alertname'], labels)).toEqual({
      key: '{alertname="A",server="s"}',
      labels: { alertname: 'A', server: 's' },
    });
    expect(groupOf(['...'], labels).labels).toEqual(labels);
    expect(groupOf(['missing'], labels).key).toBe('{}');
  });

  it('fills {{ $value }}, {{ $threshold }} and {{ $labels.x }}', () => {
    const text = renderTemplate('{{ $labels.version }} at {{$value}} (limit {{ $threshold }}) {{ $nope }}', {
      value: 0.123456,
      threshold: 0.05,
      labels: { version: '1.2.0' },
    });
    expect(text).toBe('1.2.0 at 0.1235 (limit 0.05) {{ $nope }}');
  });
});
