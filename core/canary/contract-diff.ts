/**
 * Contract diff between two versions of an MCP server, from their `tools/list` results: which
 * tools went away or arrived and how input schemas changed, each change classified as breaking
 * (a call that worked against the baseline can fail or change meaning against the candidate) or
 * not. Given both version numbers it flags a breaking change under a non-major bump with the rule
 * of core/registry/semver-policy.ts (under 1.0.0, MINOR counts as major).
 *
 * Only input schemas are compared: they are the contract clients call with. When a part of a
 * schema cannot be compared structurally (anyOf/oneOf/allOf/not/if, remote $refs) a change to it
 * is reported as breaking — a false alarm is cheaper than a silent break.
 */
import { createHash } from 'node:crypto';
import semver from 'semver';
import { BadRequestError } from '../errors.ts';
import { breakingViolation, parseVersion } from '../registry/semver-policy.ts';

export type JsonSchema = boolean | { [key: string]: unknown };

/** One tool as `tools/list` returns it. */
export interface McpTool {
  name: string;
  title?: string;
  description?: string;
  inputSchema?: JsonSchema;
  outputSchema?: JsonSchema;
  annotations?: unknown;
}

export type ChangeKind =
  | 'tool-removed'
  | 'tool-added'
  | 'description-changed'
  | 'required-added'
  | 'required-removed'
  | 'property-removed'
  | 'property-added'
  | 'type-changed'
  | 'enum-changed'
  | 'constraint-changed'
  | 'additional-properties-changed'
  | 'default-changed'
  | 'schema-changed';

export interface ContractChange {
  tool: string;
  kind: ChangeKind;
  /** property path inside the input schema ("filters.kind", "tags[]"); "" for the tool itself */
  path: string;
  breaking: boolean;
  detail: string;
}

export interface ContractSide {
  version: string | null;
  tools: number;
  /** toolsHash of the list */
  hash: string;
}

export interface ContractDiff {
  baseline: ContractSide;
  candidate: ContractSide;
  removedTools: string[];
  addedTools: string[];
  /** tools present in both with a changed input schema or description */
  changedTools: string[];
  changes: ContractChange[];
  breaking: boolean;
  /** the semver step from baseline to candidate, when both versions are known */
  bump: 'major' | 'minor' | 'patch' | 'prerelease' | 'none' | 'downgrade' | null;
  /** "breaking change under a non-major bump: …", or null */
  violation: string | null;
}

type Obj = { [key: string]: unknown };
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value))
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  if (isObj(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

// Arrays whose order carries no meaning in JSON Schema; sorted before hashing.
const SET_KEYWORDS = new Set(['required', 'enum', 'type']);

function normalizeSchema(value: unknown, key?: string): unknown {
  if (Array.isArray(value)) {
    const items = value.map((v) => normalizeSchema(v));
    return key && SET_KEYWORDS.has(key)
      ? [...items].sort((a, b) => (canonicalJson(a) < canonicalJson(b) ? -1 : 1))
      : items;
  }
  if (isObj(value))
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalizeSchema(v, k)]));
  return value;
}

/**
 * A stable sha256 (hex) of a tool list: tools in name order, keys sorted, set-like schema arrays
 * (required, enum, type) sorted, so a server that lists the same tools in another order or
 * serializes keys differently keeps its hash. Health checks record it to notice contract drift.
 */
export function toolsHash(tools: readonly McpTool[]): string {
  const normalized = [...tools]
    .map((t) => ({
      name: t.name,
      title: t.title,
      description: t.description,
      inputSchema: normalizeSchema(t.inputSchema),
      outputSchema: normalizeSchema(t.outputSchema),
      annotations: t.annotations,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return createHash('sha256').update(canonicalJson(normalized)).digest('hex');
}

interface Ctx {
  tool: string;
  changes: ContractChange[];
  rootA: JsonSchema;
  rootB: JsonSchema;
  seen: Set<string>;
}

/** Follows local $refs ("#/$defs/Filter"); a remote or broken ref stays as it is. */
function deref(schema: unknown, root: JsonSchema, chain: string[] = []): unknown {
  if (!isObj(schema) || typeof schema.$ref !== 'string' || !schema.$ref.startsWith('#')) return schema;
  const ref = schema.$ref;
  if (chain.includes(ref)) return schema;
  let node: unknown = root;
  for (const raw of ref.slice(1).split('/').filter(Boolean)) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    node = isObj(node) ? node[part] : undefined;
  }
  if (node === undefined) return schema;
  const { $ref: _ref, ...rest } = schema;
  const target = deref(node, root, [...chain, ref]);
  return Object.keys(rest).length && isObj(target) ? { ...target, ...rest } : target;
}

/** The JSON types a schema admits; null = any. */
function typesOf(s: Obj): Set<string> | null {
  const t = s.type;
  if (typeof t === 'string') return new Set([t]);
  if (Array.isArray(t)) return new Set(t.filter((x): x is string => typeof x === 'string'));
  return null;
}

const admits = (types: Set<string> | null, t: string) =>
  types === null || types.has(t) || (t === 'integer' && types.has('number'));

const show = (v: unknown) => (v === undefined ? 'none' : canonicalJson(v));

const LOWER_BOUNDS = ['minimum', 'exclusiveMinimum', 'minLength', 'minItems', 'minProperties'];
const UPPER_BOUNDS = ['maximum', 'exclusiveMaximum', 'maxLength', 'maxItems', 'maxProperties'];
const OPAQUE = [
  'pattern',
  'format',
  'multipleOf',
  'anyOf',
  'oneOf',
  'allOf',
  'not',
  'if',
  'then',
  'else',
  'const',
];

function push(ctx: Ctx, kind: ChangeKind, path: string, breaking: boolean, detail: string): void {
  ctx.changes.push({ tool: ctx.tool, kind, path, breaking, detail });
}

const where = (path: string) => (path ? `property ${path}` : 'the input');

function diffSchema(ctx: Ctx, path: string, rawA: unknown, rawB: unknown): void {
  const a = deref(rawA, ctx.rootA);
  const b = deref(rawB, ctx.rootB);
  const key = `${path}\u0000${canonicalJson(a)}\u0000${canonicalJson(b)}`;
  if (ctx.seen.has(key)) return; // recursive schemas
  ctx.seen.add(key);
  if (canonicalJson(normalizeSchema(a)) === canonicalJson(normalizeSchema(b))) return;
  // Boolean schemas and remote refs: compare as opaque values.
  if (!isObj(a) || !isObj(b) || typeof a.$ref === 'string' || typeof b.$ref === 'string') {
    const widened = b === true || (isObj(b) && Object.keys(b).length === 0);
    push(ctx, 'schema-changed', path, !widened, `${where(path)} changed from ${show(a)} to ${show(b)}`);
    return;
  }

  const ta = typesOf(a);
  const tb = typesOf(b);
  const lost = ta === null ? (tb === null ? [] : ['any type']) : [...ta].filter((t) => !admits(tb, t));
  const gained = tb === null ? (ta === null ? [] : ['any type']) : [...tb].filter((t) => !admits(ta, t));
  if (lost.length || gained.length) {
    const from = ta ? [...ta].join(' | ') : 'any';
    const to = tb ? [...tb].join(' | ') : 'any';
    push(
      ctx,
      'type-changed',
      path,
      lost.length > 0,
      `${where(path)} type changed from ${from} to ${to}${lost.length ? ` (no longer accepts ${lost.join(', ')})` : ''}`,
    );
  }

  const ea = Array.isArray(a.enum) ? new Set(a.enum.map(canonicalJson)) : null;
  const eb = Array.isArray(b.enum) ? new Set(b.enum.map(canonicalJson)) : null;
  if (ea || eb) {
    const removed = ea ? [...ea].filter((v) => eb !== null && !eb.has(v)) : [];
    const added = eb ? [...eb].filter((v) => ea !== null && !ea.has(v)) : [];
    if (!ea && eb)
      push(ctx, 'enum-changed', path, true, `${where(path)} is now limited to ${[...eb].join(', ')}`);
    else if (ea && !eb)
      push(ctx, 'enum-changed', path, false, `${where(path)} is no longer limited to a list of values`);
    else if (removed.length || added.length) {
      const parts = [
        removed.length ? `no longer accepts ${removed.join(', ')}` : '',
        added.length ? `now also accepts ${added.join(', ')}` : '',
      ];
      push(
        ctx,
        'enum-changed',
        path,
        removed.length > 0,
        `${where(path)} ${parts.filter(Boolean).join('; ')}`,
      );
    }
  }

  for (const k of LOWER_BOUNDS) {
    const va = a[k];
    const vb = b[k];
    if (va === vb) continue;
    const tighter = typeof vb === 'number' && (typeof va !== 'number' || vb > va);
    push(
      ctx,
      'constraint-changed',
      path,
      tighter,
      `${where(path)} ${k} changed from ${show(va)} to ${show(vb)}`,
    );
  }
  for (const k of UPPER_BOUNDS) {
    const va = a[k];
    const vb = b[k];
    if (va === vb) continue;
    const tighter = typeof vb === 'number' && (typeof va !== 'number' || vb < va);
    push(
      ctx,
      'constraint-changed',
      path,
      tighter,
      `${where(path)} ${k} changed from ${show(va)} to ${show(vb)}`,
    );
  }
  for (const k of OPAQUE) {
    if (canonicalJson(a[k] ?? null) === canonicalJson(b[k] ?? null)) continue;
    // Dropping a restriction only widens what is accepted; adding or changing one cannot be checked.
    const breaking = b[k] !== undefined;
    push(
      ctx,
      'constraint-changed',
      path,
      breaking,
      `${where(path)} ${k} changed from ${show(a[k])} to ${show(b[k])}`,
    );
  }
  if (canonicalJson(a.default ?? null) !== canonicalJson(b.default ?? null)) {
    push(
      ctx,
      'default-changed',
      path,
      false,
      `${where(path)} default changed from ${show(a.default)} to ${show(b.default)}`,
    );
  }

  // Objects: properties, required and additionalProperties.
  const pa = isObj(a.properties) ? a.properties : {};
  const pb = isObj(b.properties) ? b.properties : {};
  const ra = new Set(
    Array.isArray(a.required) ? a.required.filter((x): x is string => typeof x === 'string') : [],
  );
  const rb = new Set(
    Array.isArray(b.required) ? b.required.filter((x): x is string => typeof x === 'string') : [],
  );
  const child = (name: string) => (path ? `${path}.${name}` : name);
  const closedB = b.additionalProperties === false;
  for (const name of Object.keys(pa)) {
    if (name in pb) continue;
    push(
      ctx,
      'property-removed',
      child(name),
      true,
      closedB
        ? `property ${child(name)} was removed; calls that pass it are now rejected`
        : `property ${child(name)} was removed; calls that pass it are no longer understood`,
    );
  }
  for (const name of rb) {
    if (ra.has(name)) continue;
    push(
      ctx,
      'required-added',
      child(name),
      true,
      name in pa ? `property ${child(name)} became required` : `new required property ${child(name)}`,
    );
  }
  for (const name of ra) {
    if (!rb.has(name) && name in pb)
      push(ctx, 'required-removed', child(name), false, `property ${child(name)} is now optional`);
  }
  for (const name of Object.keys(pb)) {
    if (!(name in pa) && !rb.has(name))
      push(ctx, 'property-added', child(name), false, `new optional property ${child(name)}`);
  }
  for (const name of Object.keys(pa)) if (name in pb) diffSchema(ctx, child(name), pa[name], pb[name]);

  const aa = a.additionalProperties;
  const ab = b.additionalProperties;
  if (isObj(aa) && isObj(ab)) diffSchema(ctx, path ? `${path}.*` : '*', aa, ab);
  else if (canonicalJson(aa ?? true) !== canonicalJson(ab ?? true)) {
    const closing = ab === false || (isObj(ab) && aa !== false);
    push(
      ctx,
      'additional-properties-changed',
      path,
      closing,
      ab === false
        ? `${where(path)} no longer accepts undeclared properties`
        : `${where(path)} additionalProperties changed from ${show(aa)} to ${show(ab)}`,
    );
  }

  // Arrays: the item schema.
  if (a.items !== undefined || b.items !== undefined)
    diffSchema(ctx, `${path}[]`, a.items ?? true, b.items ?? true);
}

function indexTools(tools: readonly McpTool[], side: string): Map<string, McpTool> {
  if (!Array.isArray(tools))
    throw new BadRequestError(
      `the ${side} tools/list result must be an array of tools`,
      'invalid-tools-list',
    );
  const map = new Map<string, McpTool>();
  for (const tool of tools) {
    const t: unknown = tool;
    if (!isObj(t) || typeof t.name !== 'string' || t.name === '')
      throw new BadRequestError(
        `every tool in the ${side} tools/list result needs a name`,
        'invalid-tools-list',
      );
    if (map.has(t.name))
      throw new BadRequestError(
        `the ${side} tools/list result lists tool ${JSON.stringify(t.name)} twice`,
        'invalid-tools-list',
      );
    map.set(t.name, tool);
  }
  return map;
}

function bumpOf(baseline: string, candidate: string): NonNullable<ContractDiff['bump']> {
  const cmp = semver.compare(candidate, baseline);
  if (cmp === 0) return 'none';
  if (cmp < 0) return 'downgrade';
  const d = semver.diff(baseline, candidate);
  if (d === 'major' || d === 'premajor') return 'major';
  if (d === 'minor' || d === 'preminor') return 'minor';
  if (d === 'patch' || d === 'prepatch') return 'patch';
  return 'prerelease';
}

/** Diffs the candidate's tools against the baseline's; versions are checked as strict semver. */
export function diffTools(
  baseline: readonly McpTool[],
  candidate: readonly McpTool[],
  versions?: { baseline: string; candidate: string },
): ContractDiff {
  const a = indexTools(baseline, 'baseline');
  const b = indexTools(candidate, 'candidate');
  const changes: ContractChange[] = [];
  const removedTools = [...a.keys()].filter((n) => !b.has(n)).sort();
  const addedTools = [...b.keys()].filter((n) => !a.has(n)).sort();
  for (const name of removedTools) {
    changes.push({
      tool: name,
      kind: 'tool-removed',
      path: '',
      breaking: true,
      detail: `tool ${name} was removed`,
    });
  }
  for (const name of addedTools) {
    changes.push({
      tool: name,
      kind: 'tool-added',
      path: '',
      breaking: false,
      detail: `tool ${name} was added`,
    });
  }
  const changedTools: string[] = [];
  for (const name of [...a.keys()].filter((n) => b.has(n)).sort()) {
    const ta = a.get(name) as McpTool;
    const tb = b.get(name) as McpTool;
    const before = changes.length;
    if ((ta.description ?? '') !== (tb.description ?? '')) {
      changes.push({
        tool: name,
        kind: 'description-changed',
        path: '',
        breaking: false,
        detail: `tool ${name} description changed`,
      });
    }
    const sa = ta.inputSchema ?? { type: 'object' };
    const sb = tb.inputSchema ?? { type: 'object' };
    diffSchema({ tool: name, changes, rootA: sa, rootB: sb, seen: new Set() }, '', sa, sb);
    if (changes.length > before) changedTools.push(name);
  }
  const breaking = changes.some((c) => c.breaking);

  let bump: ContractDiff['bump'] = null;
  let violation: string | null = null;
  if (versions) {
    const base = parseVersion(versions.baseline);
    const cand = parseVersion(versions.candidate);
    bump = bumpOf(base.version, cand.version);
    // A pre-release baseline promises nothing (semver §9); a downgrade is not a release step.
    if (
      breaking &&
      bump !== 'downgrade' &&
      base.prerelease.length === 0 &&
      breakingViolation(cand.version, base.version)
    ) {
      const first = changes
        .filter((c) => c.breaking)
        .slice(0, 3)
        .map((c) => (c.path ? `${c.tool}: ${c.detail}` : c.detail));
      const more = changes.filter((c) => c.breaking).length - first.length;
      const needs =
        base.major === 0 && cand.major === 0
          ? `under 1.0.0 a breaking change needs at least 0.${base.minor + 1}.0`
          : `a breaking change needs ${base.major + 1}.0.0`;
      violation = `breaking change under a non-major bump: ${versions.baseline} → ${versions.candidate} (${first.join('; ')}${more > 0 ? `; ${more} more` : ''}); ${needs}`;
    }
  }
  return {
    baseline: { version: versions?.baseline ?? null, tools: a.size, hash: toolsHash(baseline) },
    candidate: { version: versions?.candidate ?? null, tools: b.size, hash: toolsHash(candidate) },
    removedTools,
    addedTools,
    changedTools,
    changes,
    breaking,
    bump,
    violation,
  };
}
