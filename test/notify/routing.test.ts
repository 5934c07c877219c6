import { describe, expect, it } from 'vitest';
import {
  eventLabels,
  eventTypeMatches,
  matchesAll,
  validateEventGlobs,
  validateMatchers,
} from '#core/notify/matchers.ts';

describe('label matchers (Alertmanager semantics)', () => {
  const labels = { server: 'matrix', environment: 'production', severity: 'critical' };

  it('matches =, !=, =~ and !~, with regexes anchored', () => {
    expect(matchesAll([{ name: 'server', op: '=', value: 'matrix' }], labels)).toBe(true);
    expect(matchesAll([{ name: 'server', op: '!=', value: 'matrix' }], labels)).toBe(false);
    expect(matchesAll([{ name: 'environment', op: '=~', value: 'prod|production' }], labels)).toBe(true);
    // Anchored: "prod" does not match "production".
    expect(matchesAll([{ name: 'environment', op: '=~', value: 'prod' }], labels)).toBe(false);
    expect(matchesAll([{ name: 'severity', op: '!~', value: 'info|warning' }], labels)).toBe(true);
  });

  it('treats a missing label as the empty string', () => {
    expect(matchesAll([{ name: 'team', op: '=', value: '' }], labels)).toBe(true);
    expect(matchesAll([{ name: 'team', op: '!=', value: 'infra' }], labels)).toBe(true);
    expect(matchesAll([{ name: 'team', op: '=~', value: '.+' }], labels)).toBe(false);
  });

  it('requires every matcher; no matchers match everything', () => {
    expect(
      matchesAll(
        [
          { name: 'server', op: '=', value: 'matrix' },
          { name: 'severity', op: '=', value: 'warning' },
        ],
        labels,
      ),
    ).toBe(false);
    expect(matchesAll([], labels)).toBe(true);
  });

  it('refuses bad label names and regexes with a message naming the matcher', () => {
    expect(() => validateMatchers([{ name: '1bad', op: '=', value: 'x' }])).toThrow(/matchers\[0\]\.name/);
    expect(() => validateMatchers([{ name: 'server', op: '=~', value: '(' }])).toThrow(
      /matchers\[0\]\.value is not a valid regular expression/,
    );
    expect(() => validateMatchers([{ name: 'server', op: '~' as '=', value: 'x' }])).toThrow(/one of/);
  });

  it("routes on the event's type, server, environment and version as labels", () => {
    expect(
      eventLabels({
        type: 'deployment.step',
        orgId: 'o',
        server: 'matrix',
        environment: 'production',
        version: '1.2.0',
        labels: { severity: 'info', server: 'spoofed' },
        summary: '',
        data: {},
      }),
    ).toEqual({
      event: 'deployment.step',
      server: 'matrix',
      environment: 'production',
      version: '1.2.0',
      severity: 'info',
    });
  });
});

describe('event-type patterns', () => {
  it('matches exact types, segment wildcards and everything', () => {
    expect(eventTypeMatches(['deployment.*'], 'deployment.step')).toBe(true);
    expect(eventTypeMatches(['deployment.*'], 'deployment')).toBe(false);
    expect(eventTypeMatches(['deployment.*'], 'deploymentx.step')).toBe(false);
    expect(eventTypeMatches(['alert.firing'], 'alert.resolved')).toBe(false);
    expect(eventTypeMatches(['alert.firing', 'canary.*'], 'canary.verdict')).toBe(true);
    expect(eventTypeMatches(['*'], 'anything.at.all')).toBe(true);
    expect(eventTypeMatches(['*.verdict'], 'canary.verdict')).toBe(true);
  });

  it('refuses patterns that are not dotted names', () => {
    expect(() => validateEventGlobs([])).toThrow(/at least one/);
    expect(() => validateEventGlobs(['deploy ment'])).toThrow(/events\[0\]/);
    expect(() => validateEventGlobs(['alert.**'])).toThrow(/events\[0\]/);
    expect(validateEventGlobs(['alert.*', 'alert.*'])).toEqual(['alert.*']);
  });
});
