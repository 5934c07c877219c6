/**
 * OSV records (ossf/osv-schema): the shape Pylee reads, checked field by field so a bad record is
 * refused with the JSON path of its first problem.
 */
import { BadRequestError } from '../errors.ts';

export const EVENT_KINDS = ['introduced', 'fixed', 'last_affected', 'limit'] as const;
export type EventKind = (typeof EVENT_KINDS)[number];
export type OsvEvent = Partial<Record<EventKind, string>>;

export interface OsvRange {
  type: 'SEMVER' | 'ECOSYSTEM' | 'GIT';
  repo?: string;
  events: OsvEvent[];
}

export interface OsvAffected {
  package?: { ecosystem: string; name: string; purl?: string };
  ranges?: OsvRange[];
  versions?: string[];
  severity?: OsvSeverity[];
  database_specific?: Record<string, unknown>;
  ecosystem_specific?: Record<string, unknown>;
}

export interface OsvSeverity {
  type: string;
  score: string;
}

export interface OsvRecord {
  schema_version?: string;
  id: string;
  modified: string;
  published?: string;
  withdrawn?: string;
  aliases?: string[];
  related?: string[];
  summary?: string;
  details?: string;
  severity?: OsvSeverity[];
  affected?: OsvAffected[];
  references?: { type: string; url: string }[];
  database_specific?: Record<string, unknown>;
}

const RANGE_TYPES = ['SEMVER', 'ECOSYSTEM', 'GIT'];
// RFC 3339 as OSV writes it; fractional seconds and offsets allowed.
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

class Checker {
  private readonly where: string;
  constructor(where: string) {
    this.where = where;
  }
  fail(path: string, problem: string): never {
    throw new BadRequestError(`${this.where}: ${path} ${problem}`, 'invalid-osv-record', {
      record: this.where,
      path,
    });
  }
  string(value: unknown, path: string, required = true): void {
    if (value === undefined && !required) return;
    if (typeof value !== 'string') this.fail(path, 'must be a string');
  }
  strings(value: unknown, path: string): void {
    if (value === undefined) return;
    if (!Array.isArray(value)) this.fail(path, 'must be an array of strings');
    value.forEach((v, i) => this.string(v, `${path}[${i}]`));
  }
  timestamp(value: unknown, path: string, required = true): void {
    this.string(value, path, required);
    if (typeof value === 'string' && !TIMESTAMP.test(value))
      this.fail(path, `"${value}" is not an RFC 3339 timestamp`);
  }
  severity(value: unknown, path: string): void {
    if (value === undefined) return;
    if (!Array.isArray(value)) this.fail(path, 'must be an array');
    value.forEach((s: unknown, i) => {
      if (!isObject(s)) this.fail(`${path}[${i}]`, 'must be an object');
      this.string(s.type, `${path}[${i}].type`);
      this.string(s.score, `${path}[${i}].score`);
    });
  }
}

function checkRange(c: Checker, range: unknown, path: string): void {
  if (!isObject(range)) c.fail(path, 'must be an object');
  if (typeof range.type !== 'string' || !RANGE_TYPES.includes(range.type)) {
    c.fail(`${path}.type`, `must be one of ${RANGE_TYPES.join(', ')}`);
  }
  if (range.type === 'GIT') c.string(range.repo, `${path}.repo`);
  if (!Array.isArray(range.events) || range.events.length === 0)
    c.fail(`${path}.events`, 'must be a non-empty array');
  let introduced = false;
  let fixed = false;
  let lastAffected = false;
  range.events.forEach((event: unknown, i) => {
    const at = `${path}.events[${i}]`;
    if (!isObject(event)) c.fail(at, 'must be an object');
    const keys = Object.keys(event);
    if (keys.length !== 1 || !(EVENT_KINDS as readonly string[]).includes(keys[0] as string)) {
      c.fail(at, `must have exactly one of ${EVENT_KINDS.join(', ')}`);
    }
    const kind = keys[0] as EventKind;
    c.string(event[kind], `${at}.${kind}`);
    if (kind === 'introduced') introduced = true;
    if (kind === 'fixed') fixed = true;
    if (kind === 'last_affected') lastAffected = true;
  });
  if (!introduced) c.fail(`${path}.events`, 'needs at least one introduced event');
  if (fixed && lastAffected) c.fail(`${path}.events`, 'may hold fixed or last_affected events, not both');
}

/**
 * Checks that `value` is an OSV record; `where` names it in errors (the zip entry). Returns it
 * typed. Unknown fields are allowed, as the schema allows them.
 */
export function checkRecord(value: unknown, where: string): OsvRecord {
  const c: Checker = new Checker(where);
  if (!isObject(value)) c.fail('the document', 'is not a JSON object (an OSV record)');
  if (typeof value.id !== 'string' || value.id.trim() === '') c.fail('id', 'must be a non-empty string');
  c.timestamp(value.modified, 'modified');
  c.timestamp(value.published, 'published', false);
  c.timestamp(value.withdrawn, 'withdrawn', false);
  c.strings(value.aliases, 'aliases');
  c.string(value.summary, 'summary', false);
  c.string(value.details, 'details', false);
  c.severity(value.severity, 'severity');
  if (value.affected !== undefined) {
    if (!Array.isArray(value.affected)) c.fail('affected', 'must be an array');
    value.affected.forEach((a: unknown, i) => {
      const at = `affected[${i}]`;
      if (!isObject(a)) c.fail(at, 'must be an object');
      if (a.package !== undefined) {
        if (!isObject(a.package)) c.fail(`${at}.package`, 'must be an object');
        c.string(a.package.ecosystem, `${at}.package.ecosystem`);
        c.string(a.package.name, `${at}.package.name`);
      }
      if (a.ranges !== undefined) {
        if (!Array.isArray(a.ranges)) c.fail(`${at}.ranges`, 'must be an array');
        a.ranges.forEach((r: unknown, j) => checkRange(c, r, `${at}.ranges[${j}]`));
      }
      c.strings(a.versions, `${at}.versions`);
      c.severity(a.severity, `${at}.severity`);
    });
  }
  if (value.references !== undefined && !Array.isArray(value.references))
    c.fail('references', 'must be an array');
  if (value.database_specific !== undefined && !isObject(value.database_specific)) {
    c.fail('database_specific', 'must be an object');
  }
  return value as unknown as OsvRecord;
}
