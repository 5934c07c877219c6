import { describe, expect, it } from 'vitest';
import {
  inhibitedBy,
  validateInhibition,
  type InhibitionRule,
  type SourceAlert,
} from '#core/alerting/inhibitions.ts';
import { showLabels } from '#core/alerting/mutes.ts';

const rule = (over: Partial<InhibitionRule> = {}): InhibitionRule => ({
  id: 'r1',
  name: null,
  sourceMatchers: [{ name: 'severity', op: '=', value: 'critical' }],
  targetMatchers: [{ name: 'severity', op: '=', value: 'warning' }],
  equal: ['server', 'environment'],
  ...over,
});
const source = (labels: Record<string, string>, id = 'src'): SourceAlert => ({
  alertId: id,
  fingerprint: `fp-${id}`,
  labels,
});
const critical = { alertname: 'Down', severity: 'critical', server: 'checkout', environment: 'production' };
const warning = { alertname: 'Slow', severity: 'warning', server: 'checkout', environment: 'production' };

describe('inhibitedBy (Alertmanager inhibit_rules semantics)', () => {
  it('inhibits a target while a source with the same equal labels fires', () => {
    const hit = inhibitedBy([rule()], [source(critical)], warning);
    expect(hit).toEqual({ rule: { id: 'r1', name: null }, source: source(critical) });
  });

  it('does not inhibit when an equal label differs', () => {
    expect(inhibitedBy([rule()], [source({ ...critical, environment: 'staging' })], warning)).toBeNull();
  });

  it('treats an equal label missing on both sides as equal, and missing on one side as different', () => {
    const { environment: _s, ...noEnvSource } = critical;
    const { environment: _t, ...noEnvTarget } = warning;
    expect(inhibitedBy([rule()], [source(noEnvSource)], noEnvTarget)).not.toBeNull();
    expect(inhibitedBy([rule()], [source(noEnvSource)], warning)).toBeNull();
  });

  it('needs the target matchers to hold for the target and the source matchers for the source', () => {
    expect(inhibitedBy([rule()], [source(critical)], { ...warning, severity: 'info' })).toBeNull();
    expect(inhibitedBy([rule()], [source({ ...critical, severity: 'warning' })], warning)).toBeNull();
  });

  it('inhibits nothing without a firing source', () => {
    expect(inhibitedBy([rule()], [], warning)).toBeNull();
  });

  it('with no equal labels, any firing source inhibits every target', () => {
    const hit = inhibitedBy(
      [rule({ equal: [] })],
      [source({ severity: 'critical', server: 'other' })],
      warning,
    );
    expect(hit?.source.alertId).toBe('src');
  });

  it('never lets an alert matching both sides inhibit itself or another alert matching both sides', () => {
    // Source: any alertname=~Down.*; target: any severity — an alert matching both must not mute itself.
    const both = rule({
      sourceMatchers: [{ name: 'alertname', op: '=~', value: 'Down.*' }],
      targetMatchers: [{ name: 'server', op: '=', value: 'checkout' }],
      equal: ['server'],
    });
    const self = { ...critical };
    expect(inhibitedBy([both], [source(self, 'self')], self)).toBeNull();
    // Another two-sided alert is disregarded as a source of a two-sided target too.
    expect(inhibitedBy([both], [source({ ...critical, alertname: 'DownHard' }, 'other')], self)).toBeNull();
    // A one-sided target is inhibited by a two-sided source.
    expect(inhibitedBy([both], [source(self, 'self')], warning)?.source.alertId).toBe('self');
    // A two-sided target is inhibited by a source that matches only the source side.
    const sourceOnly = { alertname: 'DownDb', server: 'checkout', severity: 'critical' };
    const narrow = rule({
      sourceMatchers: [{ name: 'alertname', op: '=~', value: 'Down.*' }],
      targetMatchers: [
        { name: 'server', op: '=', value: 'checkout' },
        { name: 'environment', op: '=', value: 'production' },
      ],
      equal: ['server'],
    });
    expect(inhibitedBy([narrow], [source(sourceOnly, 'db')], self)?.source.alertId).toBe('db');
  });

  it('uses anchored regexes and != / !~ like Alertmanager', () => {
    const r = rule({
      sourceMatchers: [{ name: 'environment', op: '=~', value: 'prod' }],
      targetMatchers: [{ name: 'severity', op: '!~', value: 'critical|page' }],
      equal: [],
    });
    expect(inhibitedBy([r], [source({ environment: 'preprod' })], warning)).toBeNull();
    expect(inhibitedBy([r], [source({ environment: 'prod' })], warning)).not.toBeNull();
    expect(inhibitedBy([r], [source({ environment: 'prod' })], critical)).toBeNull();
  });

  it('answers with the first rule that inhibits, in order', () => {
    const first = rule({ id: 'a', equal: ['region'] });
    const second = rule({ id: 'b', name: 'second' });
    expect(inhibitedBy([first, second], [source(critical)], { ...warning, region: 'eu' })?.rule).toEqual({
      id: 'b',
      name: 'second',
    });
  });
});

describe('validateInhibition', () => {
  const ok = { sourceMatchers: [{ name: 'severity', op: '=', value: 'critical' }] };
  const target = [{ name: 'severity', op: '=', value: 'warning' }];

  it('names the matcher that is wrong', () => {
    expect(() =>
      validateInhibition({
        ...ok,
        targetMatchers: [...target, { name: 'env', op: '=~', value: '(' }],
      }),
    ).toThrow(/^targetMatchers\[1\]\.value is not a valid regular expression/);
    expect(() =>
      validateInhibition({
        sourceMatchers: [...ok.sourceMatchers, { name: '1x', op: '=', value: 'a' }],
        targetMatchers: target,
      }),
    ).toThrow(/^sourceMatchers\[1\]\.name "1x" is not a label name/);
    expect(() =>
      validateInhibition({ ...ok, targetMatchers: [{ name: 'a', op: '==', value: 'b' }] }),
    ).toThrow('targetMatchers[0].op must be one of = != =~ !~');
  });

  it('refuses empty sides and bad equal label names; trims and dedupes the rest', () => {
    expect(() => validateInhibition({ sourceMatchers: [], targetMatchers: target })).toThrow(
      /^sourceMatchers must list at least one matcher/,
    );
    expect(() => validateInhibition({ ...ok, targetMatchers: [] })).toThrow(
      /^targetMatchers must list at least one matcher/,
    );
    expect(() =>
      validateInhibition({ ...ok, targetMatchers: target, equal: ['server', 'bad-name'] }),
    ).toThrow('equal[1] "bad-name" is not a label name');
    expect(
      validateInhibition({
        ...ok,
        targetMatchers: target,
        equal: ['server', 'server'],
        name: '  ',
        comment: ' x ',
      }),
    ).toMatchObject({ equal: ['server'], name: null, comment: 'x' });
  });
});

describe('showLabels', () => {
  it('lists the labels but alertname, sorted', () => {
    expect(showLabels(critical)).toBe('{environment="production", server="checkout", severity="critical"}');
  });
});
