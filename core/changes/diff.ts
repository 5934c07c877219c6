/**
 * What changed between two versions' configuration, as rows a person scans beside a regression:
 * packages (with the semver distance of a bump), remotes, declared inputs, the breaking flag and
 * the MCP contract. Pure: the loaders live in changes.ts.
 */
import * as pep440 from '@renovatebot/pep440';
import semver from 'semver';
import type { ContractDiff } from '../canary/contract-diff.ts';
import { declaredInputs, type Package, type Remote, type VersionConfig } from '../registry/server-json.ts';

export const CHANGE_KINDS = [
  'package-added',
  'package-removed',
  'package-changed',
  'remote-added',
  'remote-removed',
  'remote-changed',
  'variable-declared',
  'variable-undeclared',
  'variable-declaration-changed',
  'resolved-variable-changed',
  'secret-changed',
  'breaking',
  'contract',
  'configuration-event',
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

export const SEMVER_DISTANCES = ['major', 'minor', 'patch', 'prerelease', 'none', 'not-semver'] as const;
export type SemverDistance = (typeof SEMVER_DISTANCES)[number];

/**
 * One change. `before`/`after` are display text (a version, a URL, a plain value, or for secrets
 * only `set`/`unset`/`changed`/`rotated`: never a secret's value). `scope` says where the change
 * lives: `version 1.4.0` for the candidate's own configuration, otherwise the variable scope
 * (`org`, `org+production`, `server`, `server+production`, `version 1.4.0`, `default`).
 */
export interface ChangeRow {
  kind: ChangeKind;
  /** A package identifier, remote URL, variable name, tool (and property path), or `breaking`. */
  name: string;
  before: string | null;
  after: string | null;
  scope: string;
  /** Who made the change (the version's creator, the variable's last writer, the audited actor). */
  actor: string | null;
  /** When (RFC 3339); null where not known. */
  at: string | null;
  detail?: string;
  /** package-changed: how far the version moved. */
  distance?: SemverDistance;
  /** contract and breaking rows: whether a client call that worked may now fail. */
  breaking?: boolean;
}

/** What diff.ts needs of a version. */
export interface VersionSide {
  version: string;
  config: VersionConfig;
  breaking: boolean;
  migrationGuide: string;
  createdBy: string;
  createdAt: string;
}

function semverDistance(a: string, b: string): SemverDistance {
  const va = semver.valid(a);
  const vb = semver.valid(b);
  if (!va || !vb) return 'not-semver';
  const d = semver.diff(va, vb);
  if (d === null) return 'none';
  if (d === 'major' || d === 'premajor') return 'major';
  if (d === 'minor' || d === 'preminor') return 'minor';
  if (d === 'patch' || d === 'prepatch') return 'patch';
  return 'prerelease';
}

/** PEP 440: epoch or first release number → major, second → minor, third or a post/local → patch, pre/dev → prerelease. */
function pep440Distance(a: string, b: string): SemverDistance {
  const pa = pep440.explain(a);
  const pb = pep440.explain(b);
  if (!pa || !pb) return 'not-semver';
  if (pep440.eq(a, b)) return 'none';
  if (pa.epoch !== pb.epoch) return 'major';
  const part = (v: typeof pa, i: number) => v.release[i] ?? 0;
  if (part(pa, 0) !== part(pb, 0)) return 'major';
  if (part(pa, 1) !== part(pb, 1)) return 'minor';
  if (part(pa, 2) !== part(pb, 2)) return 'patch';
  const same = (x: unknown, y: unknown) => JSON.stringify(x) === JSON.stringify(y);
  if (!same(pa.pre, pb.pre) || !same(pa.dev, pb.dev)) return 'prerelease';
  return 'patch';
}

/** How far a package version moved: semver for every registry, PEP 440 for PyPI. */
export function versionDistance(registryType: string, before: string, after: string): SemverDistance {
  if (before === after) return 'none';
  return registryType === 'pypi' ? pep440Distance(before, after) : semverDistance(before, after);
}

const packageKey = (p: Package) => `${p.registryType}\u0000${p.identifier}`;
const transportOf = (p: Package) =>
  p.transport.type === 'stdio' ? 'stdio' : `${p.transport.type} ${p.transport.url}`;
const names = (list: { name: string }[] | undefined) => (list ?? []).map((x) => x.name).sort();

function listChange(label: string, a: string[], b: string[]): string | undefined {
  const added = b.filter((x) => !a.includes(x));
  const removed = a.filter((x) => !b.includes(x));
  if (!added.length && !removed.length) return undefined;
  return `${label} ${[...added.map((x) => `+${x}`), ...removed.map((x) => `−${x}`)].join(' ')}`;
}

function diffPackages(a: Package[], b: Package[], where: Where): ChangeRow[] {
  const first = (list: Package[]) => {
    const map = new Map<string, Package>();
    for (const p of list) if (!map.has(packageKey(p))) map.set(packageKey(p), p);
    return map;
  };
  const before = first(a);
  const after = first(b);
  const rows: ChangeRow[] = [];
  for (const [key, p] of before) {
    if (!after.has(key))
      rows.push({
        ...where,
        kind: 'package-removed',
        name: p.identifier,
        before: p.version,
        after: null,
        detail: p.registryType,
      });
  }
  for (const [key, q] of after) {
    const p = before.get(key);
    if (!p) {
      rows.push({
        ...where,
        kind: 'package-added',
        name: q.identifier,
        before: null,
        after: q.version,
        detail: q.registryType,
      });
      continue;
    }
    const distance = versionDistance(q.registryType, p.version, q.version);
    const other = [
      transportOf(p) !== transportOf(q) ? `transport ${transportOf(p)} → ${transportOf(q)}` : undefined,
      (p.fileSha256 ?? '') !== (q.fileSha256 ?? '') ? 'file hash changed' : undefined,
      (p.runtimeHint ?? '') !== (q.runtimeHint ?? '')
        ? `runtime ${p.runtimeHint ?? '-'} → ${q.runtimeHint ?? '-'}`
        : undefined,
      listChange('environment', names(p.environmentVariables), names(q.environmentVariables)),
      p.transport.type !== 'stdio' && q.transport.type !== 'stdio'
        ? listChange('headers', names(p.transport.headers), names(q.transport.headers))
        : undefined,
    ].filter((x): x is string => x !== undefined);
    if (distance === 'none' && other.length === 0) continue;
    rows.push({
      ...where,
      kind: 'package-changed',
      name: q.identifier,
      before: p.version,
      after: q.version,
      distance,
      detail: [q.registryType, distance === 'none' ? undefined : distance, ...other]
        .filter(Boolean)
        .join(', '),
    });
  }
  return rows;
}

const remoteKey = (r: Remote) => `${r.type} ${r.url}`;

function remoteDetail(a: Remote, b: Remote): string[] {
  return [
    a.url !== b.url ? 'url changed' : undefined,
    a.type !== b.type ? `transport ${a.type} → ${b.type}` : undefined,
    listChange('headers', names(a.headers), names(b.headers)),
    listChange('variables', Object.keys(a.variables ?? {}).sort(), Object.keys(b.variables ?? {}).sort()),
  ].filter((x): x is string => x !== undefined);
}

/** Same type and URL is the same remote; of the rest, the ones at the same position moved. */
function diffRemotes(a: Remote[], b: Remote[], where: Where): ChangeRow[] {
  const rows: ChangeRow[] = [];
  const unmatchedA = a
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => !b.some((x) => remoteKey(x) === remoteKey(r)));
  const unmatchedB = b
    .map((r, i) => ({ r, i }))
    .filter(({ r }) => !a.some((x) => remoteKey(x) === remoteKey(r)));
  for (const r of b) {
    const old = a.find((x) => remoteKey(x) === remoteKey(r));
    if (!old) continue;
    const detail = remoteDetail(old, r);
    if (detail.length)
      rows.push({
        ...where,
        kind: 'remote-changed',
        name: r.url,
        before: r.url,
        after: r.url,
        detail: detail.join(', '),
      });
  }
  const moved = new Set<number>();
  for (const { r, i } of unmatchedB) {
    const old = unmatchedA.find((x) => x.i === i);
    if (old) {
      moved.add(old.i);
      rows.push({
        ...where,
        kind: 'remote-changed',
        name: r.url,
        before: old.r.url,
        after: r.url,
        detail: remoteDetail(old.r, r).join(', '),
      });
    } else {
      rows.push({ ...where, kind: 'remote-added', name: r.url, before: null, after: r.url, detail: r.type });
    }
  }
  for (const { r, i } of unmatchedA) {
    if (!moved.has(i))
      rows.push({
        ...where,
        kind: 'remote-removed',
        name: r.url,
        before: r.url,
        after: null,
        detail: r.type,
      });
  }
  return rows;
}

interface Declaration {
  required: boolean;
  secret: boolean;
  default: string | undefined;
}

/** Declared inputs by name (a name several packages or remotes ask for counts once: required if any requires it). */
export function declarations(config: VersionConfig): Map<string, Declaration> {
  const map = new Map<string, Declaration>();
  for (const input of declaredInputs(config)) {
    const held = map.get(input.name);
    map.set(input.name, {
      required: (held?.required ?? false) || input.isRequired,
      secret: (held?.secret ?? false) || input.isSecret,
      default: held?.default ?? input.default,
    });
  }
  return map;
}

// A secret input's default is configuration, but it is still not printed: "default set" says enough.
const describeDeclaration = (d: Declaration) =>
  [
    d.required ? 'required' : 'optional',
    d.secret ? 'secret' : undefined,
    d.default === undefined ? undefined : d.secret ? 'default set' : `default ${d.default}`,
  ]
    .filter(Boolean)
    .join(', ');

function diffDeclarations(a: VersionConfig, b: VersionConfig, where: Where): ChangeRow[] {
  const da = declarations(a);
  const db = declarations(b);
  const rows: ChangeRow[] = [];
  for (const [name, d] of da) {
    if (!db.has(name))
      rows.push({ ...where, kind: 'variable-undeclared', name, before: describeDeclaration(d), after: null });
  }
  for (const [name, d] of db) {
    const old = da.get(name);
    if (!old) {
      rows.push({ ...where, kind: 'variable-declared', name, before: null, after: describeDeclaration(d) });
    } else if (describeDeclaration(old) !== describeDeclaration(d) || old.default !== d.default) {
      rows.push({
        ...where,
        kind: 'variable-declaration-changed',
        name,
        before: describeDeclaration(old),
        after: describeDeclaration(d),
      });
    }
  }
  return rows;
}

type Where = Pick<ChangeRow, 'scope' | 'actor' | 'at'>;

/** The first line of a document, shortened: enough to say what a migration guide is about. */
function firstLine(text: string, max = 160): string {
  const line = text.split('\n').find((l) => l.trim()) ?? '';
  const clean = line.replace(/^#+\s*/, '').trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/** The configuration rows, in the order a reader wants them: breaking, packages, remotes, declarations. */
export function diffVersions(baseline: VersionSide, candidate: VersionSide): ChangeRow[] {
  const where: Where = {
    scope: `version ${candidate.version}`,
    actor: candidate.createdBy,
    at: candidate.createdAt,
  };
  const rows: ChangeRow[] = [];
  if (candidate.breaking || baseline.breaking) {
    const guide = candidate.migrationGuide.trim();
    rows.push({
      ...where,
      kind: 'breaking',
      name: 'breaking',
      before: baseline.breaking ? 'yes' : 'no',
      after: candidate.breaking ? 'yes' : 'no',
      breaking: candidate.breaking,
      ...(candidate.breaking
        ? { detail: guide ? `migration guide: ${firstLine(guide)}` : 'no migration guide' }
        : {}),
    });
  }
  rows.push(...diffPackages(baseline.config.packages, candidate.config.packages, where));
  rows.push(...diffRemotes(baseline.config.remotes, candidate.config.remotes, where));
  rows.push(...diffDeclarations(baseline.config, candidate.config, where));
  return rows;
}

/** One row per change of the MCP contract diff (core/canary/contract-diff.ts), plus its semver warning. */
export function contractRows(contract: ContractDiff, where: Where): ChangeRow[] {
  const rows: ChangeRow[] = contract.changes.map((c) => ({
    ...where,
    kind: 'contract' as const,
    name: c.path ? `${c.tool} ${c.path}` : c.tool,
    before: null,
    after: null,
    detail: c.detail,
    breaking: c.breaking,
  }));
  if (contract.violation)
    rows.push({
      ...where,
      kind: 'contract',
      name: 'semver',
      before: null,
      after: null,
      detail: contract.violation,
      breaking: true,
    });
  return rows;
}
