import { BadRequestError } from '../errors.ts';
import type { PyleeEvent } from './events.ts';

/** A label matcher as Alertmanager has them: `=` equal, `!=` not equal, `=~` / `!~` fully anchored regex. */
export interface LabelMatcher {
  name: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export const MATCHER_OPS = ['=', '!=', '=~', '!~'] as const;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_.]*$/;
const MAX_REGEX_CHARS = 500;

const regexCache = new Map<string, RegExp>();

/** Anchored like Prometheus (`^(?:…)$`), so `prod` does not match `preprod`. */
function anchored(source: string): RegExp {
  let re = regexCache.get(source);
  if (!re) {
    re = new RegExp(`^(?:${source})$`, 'u');
    if (regexCache.size > 1000) regexCache.clear();
    regexCache.set(source, re);
  }
  return re;
}

/** Refuses matchers a person should fix: bad label names, unknown operators, regexes that do not compile. */
export function validateMatchers(matchers: readonly LabelMatcher[], field = 'matchers'): LabelMatcher[] {
  return matchers.map((m, i) => {
    if (!LABEL_NAME.test(m.name)) {
      throw new BadRequestError(
        `${field}[${i}].name "${m.name}" is not a label name (letters, digits, _ and ., not starting with a digit)`,
      );
    }
    if (!(MATCHER_OPS as readonly string[]).includes(m.op)) {
      throw new BadRequestError(`${field}[${i}].op must be one of ${MATCHER_OPS.join(' ')}`);
    }
    if (m.op === '=~' || m.op === '!~') {
      if (m.value.length > MAX_REGEX_CHARS) {
        throw new BadRequestError(`${field}[${i}].value is longer than ${MAX_REGEX_CHARS} characters`);
      }
      try {
        anchored(m.value);
      } catch (error) {
        throw new BadRequestError(
          `${field}[${i}].value is not a valid regular expression: ${(error as Error).message}`,
        );
      }
    }
    return { name: m.name, op: m.op, value: m.value };
  });
}

/** Whether one matcher holds; a missing label is the empty string, as in Alertmanager. */
export function matcherMatches(m: LabelMatcher, labels: Record<string, string>): boolean {
  const actual = labels[m.name] ?? '';
  switch (m.op) {
    case '=':
      return actual === m.value;
    case '!=':
      return actual !== m.value;
    case '=~':
      return anchored(m.value).test(actual);
    case '!~':
      return !anchored(m.value).test(actual);
  }
}

/** All matchers hold (an empty list matches everything). */
export function matchesAll(matchers: readonly LabelMatcher[], labels: Record<string, string>): boolean {
  return matchers.every((m) => matcherMatches(m, labels));
}

/**
 * The labels routing and silences see: the event's own labels, then `event` (its type), `server`,
 * `environment` and `version` when set. The built-in ones win over an event label of the same name.
 */
export function eventLabels(event: PyleeEvent): Record<string, string> {
  const labels: Record<string, string> = { ...(event.labels ?? {}) };
  labels.event = event.type;
  if (event.server) labels.server = event.server;
  if (event.environment) labels.environment = event.environment;
  if (event.version) labels.version = event.version;
  return labels;
}

const EVENT_GLOB = /^(\*|[a-z0-9_-]+(\.([a-z0-9_-]+|\*))*)$/;

/** Refuses event-type patterns other than dotted names with `*` segments (`deployment.*`, `alert.firing`, `*`). */
export function validateEventGlobs(globs: readonly string[]): string[] {
  if (globs.length === 0) throw new BadRequestError('events must list at least one event type or pattern');
  for (const [i, glob] of globs.entries()) {
    if (!EVENT_GLOB.test(glob)) {
      throw new BadRequestError(
        `events[${i}] "${glob}" is not an event type or pattern; use dotted names with * for a whole segment, e.g. deployment.* or alert.firing`,
      );
    }
  }
  return [...new Set(globs)];
}

/** `*` matches one dotted segment, a trailing `*` everything below (`deployment.*` matches `deployment.step`). */
export function eventTypeMatches(globs: readonly string[], type: string): boolean {
  return globs.some((glob) => {
    if (glob === '*') return true;
    const pattern = glob
      .split('.')
      .map((seg) => (seg === '*' ? '[^.]+' : seg.replace(/[-]/g, '\\-')))
      .join('\\.');
    const trailing = glob.endsWith('.*') ? '(\\..+)?' : '';
    return new RegExp(`^${pattern}${trailing}$`).test(type);
  });
}
