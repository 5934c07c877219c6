/**
 * Is a package version affected by an OSV `affected[]` entry? Exactly the schema's evaluation
 * (docs/schema.md, "Evaluation"): affected if listed in `versions` or inside any range; a range is
 * walked over its events sorted by the ecosystem's ordering, `limit` events bound it from above.
 * SEMVER ranges use SemVer 2.0, ECOSYSTEM ranges the ecosystem's ordering; GIT ranges need the
 * repository's commit graph and are left to the `versions` list, as the schema says.
 */
import { ORDERINGS, SEMVER_ORDERING, type Ecosystem, type Ordering } from './ecosystems.ts';
import type { EventKind, OsvAffected, OsvEvent, OsvRange } from './osv.ts';

const kindOf = (event: OsvEvent) => Object.keys(event)[0] as EventKind;
const valueOf = (event: OsvEvent) => event[kindOf(event)] as string;

/** `introduced: "0"` sorts before every version; `limit: "*"` after every version. */
function compareEventValue(order: Ordering, kind: EventKind, value: string, version: string): number {
  if (kind === 'introduced' && value === '0') return -1;
  if (kind === 'limit' && value.includes('*')) return 1;
  return order.compare(value, version);
}

function sortKey(order: Ordering) {
  return (a: OsvEvent, b: OsvEvent): number => {
    const [ka, va, kb, vb] = [kindOf(a), valueOf(a), kindOf(b), valueOf(b)];
    const zeroA = ka === 'introduced' && va === '0';
    const zeroB = kb === 'introduced' && vb === '0';
    if (zeroA || zeroB) return zeroA === zeroB ? 0 : zeroA ? -1 : 1;
    return order.compare(va, vb);
  };
}

/** Whether every version the range names can be placed in `order` (else the range is skipped). */
export function rangeUsable(order: Ordering, range: OsvRange): boolean {
  return range.events.every((e) => {
    const kind = kindOf(e);
    const value = valueOf(e);
    if ((kind === 'introduced' && value === '0') || (kind === 'limit' && value.includes('*'))) return true;
    return order.valid(value);
  });
}

/** `BeforeLimits` and the event walk of `IncludedInRanges` for one range. */
export function inRange(order: Ordering, range: OsvRange, version: string): boolean {
  const limits = range.events.filter((e) => kindOf(e) === 'limit');
  if (limits.length > 0 && !limits.some((e) => compareEventValue(order, 'limit', valueOf(e), version) > 0)) {
    return false;
  }
  const events = range.events.filter((e) => kindOf(e) !== 'limit').sort(sortKey(order));
  let vulnerable = false;
  for (const event of events) {
    const kind = kindOf(event);
    const cmp = compareEventValue(order, kind, valueOf(event), version); // event vs version
    if (kind === 'introduced' && cmp <= 0) vulnerable = true;
    else if (kind === 'fixed' && cmp <= 0) vulnerable = false;
    else if (kind === 'last_affected' && cmp < 0) vulnerable = false;
  }
  return vulnerable;
}

function orderingFor(ecosystem: Ecosystem, range: OsvRange): Ordering | undefined {
  if (range.type === 'SEMVER') return SEMVER_ORDERING;
  if (range.type === 'ECOSYSTEM') return ORDERINGS[ecosystem];
  return undefined;
}

/** `IncludedInVersions || IncludedInRanges` for one affected entry of the package. */
export function isAffected(ecosystem: Ecosystem, affected: OsvAffected, version: string): boolean {
  const own = ORDERINGS[ecosystem];
  const ownValid = own.valid(version);
  for (const listed of affected.versions ?? []) {
    if (listed === version) return true;
    // 1.0 and 1.0.0 are one PyPI version; compare by the ordering where both parse.
    if (ownValid && own.valid(listed) && own.compare(listed, version) === 0) return true;
  }
  for (const range of affected.ranges ?? []) {
    const order = orderingFor(ecosystem, range);
    if (!order || !order.valid(version) || !rangeUsable(order, range)) continue;
    if (inRange(order, range, version)) return true;
  }
  return false;
}

/**
 * The fixed versions a package's entries name, in that package's ecosystem only (never another
 * ecosystem's entry of the same record), lowest first. A `fixed` that another of the entries still
 * covers fixes nothing and is left out: GHSA-65x7-c272-7g7r gives ImageSharp `< 3.1.3` and `< 2.1.7`,
 * so 2.1.7 is affected by the first range.
 */
export function fixedVersions(ecosystem: Ecosystem, entries: OsvAffected[]): string[] {
  const own = ORDERINGS[ecosystem];
  const fixed = new Set<string>();
  for (const entry of entries) {
    for (const range of entry.ranges ?? []) {
      if (range.type === 'GIT') continue;
      for (const event of range.events) if (event.fixed !== undefined) fixed.add(event.fixed);
    }
  }
  return [...fixed]
    .filter((v) => !entries.some((entry) => isAffected(ecosystem, entry, v)))
    .sort((a, b) => (own.valid(a) && own.valid(b) ? own.compare(a, b) : a.localeCompare(b)));
}
