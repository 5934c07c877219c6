import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

// The import graph of the server code (issue 13, item 8): dependencies point one way. No module
// reaches itself through its imports, and the roles (collector, gateway, api, alerts) import only
// core/ — never each other, nor cli/; core/ imports none of them. Type-only imports (`import type`,
// `export type … from`) count: they tie the modules for a reader as much as value imports do, and
// are marked in the messages. Only `import type` is erased at run time (verbatimModuleSyntax keeps
// `import { type X }` as a side-effect import), so the mark is exact.

const ROOT = path.resolve(import.meta.dirname, '../..');
const TREES = ['core', 'api', 'collector', 'gateway', 'alerts', 'cli'];
const ROLES = ['collector', 'gateway', 'api', 'alerts'];

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

const SUBPATHS = Object.entries(
  (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { imports: Record<string, string> })
    .imports,
);

function filesUnder(dir: string): string[] {
  const abs = path.join(ROOT, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.split(path.sep).includes('node_modules'))
    .map((f) => path.posix.join(dir, f.split(path.sep).join('/')))
    .filter((f) => statSync(path.join(ROOT, f)).isFile())
    .sort();
}

/** The repository-relative file a specifier names; null for packages and node: builtins. */
function resolve(from: string, specifier: string): string | null {
  if (specifier.startsWith('.'))
    return path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  for (const [pattern, target] of SUBPATHS) {
    const prefix = pattern.replace(/\*$/, '');
    if (pattern.endsWith('*') ? specifier.startsWith(prefix) : specifier === pattern)
      return path.posix.normalize(target.replace(/\*$/, '') + specifier.slice(prefix.length));
  }
  return null;
}

/** Static imports and re-exports of one file, from its syntax tree (comments and strings can't fool it). */
function importsOf(file: string): { specifier: string; typeOnly: boolean }[] {
  const source = ts.createSourceFile(
    file,
    readFileSync(path.join(ROOT, file), 'utf8'),
    ts.ScriptTarget.Latest,
  );
  const out: { specifier: string; typeOnly: boolean }[] = [];
  for (const s of source.statements) {
    if (ts.isImportDeclaration(s) && ts.isStringLiteral(s.moduleSpecifier))
      out.push({ specifier: s.moduleSpecifier.text, typeOnly: s.importClause?.isTypeOnly ?? false });
    else if (ts.isExportDeclaration(s) && s.moduleSpecifier && ts.isStringLiteral(s.moduleSpecifier))
      out.push({ specifier: s.moduleSpecifier.text, typeOnly: s.isTypeOnly });
  }
  return out;
}

const files = TREES.flatMap(filesUnder);
const edges: Edge[] = [];
const unresolved: string[] = [];
for (const from of files) {
  for (const { specifier, typeOnly } of importsOf(from)) {
    const to = resolve(from, specifier);
    if (to === null) continue;
    if (!existsSync(path.join(ROOT, to))) unresolved.push(`${from} imports ${specifier}: no such file`);
    else edges.push({ from, to, typeOnly });
  }
}

const out = new Map<string, Edge[]>();
for (const e of edges) out.set(e.from, [...(out.get(e.from) ?? []), e]);

/** Strongly connected components of more than one file, or a file importing itself (Tarjan). */
function cycles(): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const { to } of out.get(v) ?? []) {
      if (!index.has(to)) {
        visit(to);
        low.set(v, Math.min(low.get(v)!, low.get(to)!));
      } else if (onStack.has(to)) low.set(v, Math.min(low.get(v)!, index.get(to)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (out.get(v) ?? []).some((e) => e.to === v)) found.push(scc.sort());
    }
  };
  for (const f of [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort()) if (!index.has(f)) visit(f);
  return found;
}

/** One loop through a cycle's files, as a reader would follow it: a.ts → b.ts (type) → a.ts. */
function describeCycle(scc: string[]): string {
  const members = new Set(scc);
  const start = scc[0]!;
  // Breadth-first from start to itself inside the component: the shortest loop.
  const previous = new Map<string, Edge>();
  const queue = [start];
  let closing: Edge | undefined;
  while (queue.length && !closing) {
    const v = queue.shift()!;
    for (const e of out.get(v) ?? []) {
      if (!members.has(e.to)) continue;
      if (e.to === start) {
        closing = e;
        break;
      }
      if (!previous.has(e.to)) {
        previous.set(e.to, e);
        queue.push(e.to);
      }
    }
  }
  const path_: Edge[] = [closing!];
  while (path_[0]!.from !== start) path_.unshift(previous.get(path_[0]!.from)!);
  const loop = [start, ...path_.map((e) => `${e.typeOnly ? '(type) ' : ''}→ ${e.to}`)].join(' ');
  return scc.length > path_.length ? `${loop}; all ${scc.length} files in the knot: ${scc.join(', ')}` : loop;
}

const tree = (file: string) => file.split('/')[0]!;

describe('the import graph', () => {
  it('reads every file and resolves every relative and #subpath import', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(edges.length).toBeGreaterThan(files.length);
    expect(unresolved).toEqual([]);
  });

  it('has no cycles', () => {
    expect(
      cycles().map(describeCycle),
      'import cycles (move the shared piece down to where both can import it)',
    ).toEqual([]);
  });

  it('roles import only core/ (and themselves); core/ imports no role and not the CLI', () => {
    const wrong = edges
      .filter((e) => {
        const [from, to] = [tree(e.from), tree(e.to)];
        if (from === to || !(ROLES.includes(from) || from === 'core')) return false;
        // package.json (the version) and other data files are not code of another tree.
        return [...ROLES, 'cli', 'web', 'test', 'bench', 'demo'].includes(to);
      })
      .map((e) => `${e.from} ${e.typeOnly ? 'imports types from' : 'imports'} ${e.to}`);
    expect(wrong, 'collector, gateway, api and alerts depend on core only; cli composes them').toEqual([]);
  });
});
