import { describe, expect, it } from 'vitest';
import type { McpTool } from '#core/canary/contract-diff.ts';
import { canonicalJson, diffTools, toolsHash } from '#core/canary/contract-diff.ts';
import { BadRequestError } from '#core/errors.ts';

const search: McpTool = {
  name: 'search',
  description: 'Search documents',
  inputSchema: {
    type: 'object',
    properties: {
      query: { type: 'string', minLength: 1 },
      limit: { type: 'integer', minimum: 1, maximum: 100, default: 10 },
      sort: { type: 'string', enum: ['relevance', 'date'] },
      filters: {
        type: 'object',
        properties: { kind: { type: 'string' }, tags: { type: 'array', items: { type: 'string' } } },
      },
    },
    required: ['query'],
  },
};
const fetchTool: McpTool = {
  name: 'fetch',
  description: 'Fetch a document',
  inputSchema: { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] },
};

/** A deep copy of `search` with its input schema edited. */
function searchWith(
  edit: (
    s: { properties: Record<string, Record<string, unknown>>; required: string[] } & Record<string, unknown>,
  ) => void,
): McpTool {
  const copy = structuredClone(search);
  edit(copy.inputSchema as never);
  return copy;
}

const kinds = (d: ReturnType<typeof diffTools>) => d.changes.map((c) => [c.kind, c.path, c.breaking]);

describe('contract diff', () => {
  it('identical lists have no changes and the same hash', () => {
    const d = diffTools([search, fetchTool], [fetchTool, search]);
    expect(d.changes).toEqual([]);
    expect(d.breaking).toBe(false);
    expect(d.baseline.hash).toBe(d.candidate.hash);
    expect(d.baseline.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('a removed tool is breaking, an added one is not', () => {
    const d = diffTools(
      [search, fetchTool],
      [search, { name: 'summarize', inputSchema: { type: 'object' } }],
    );
    expect(d.removedTools).toEqual(['fetch']);
    expect(d.addedTools).toEqual(['summarize']);
    expect(kinds(d)).toEqual([
      ['tool-removed', '', true],
      ['tool-added', '', false],
    ]);
    expect(d.breaking).toBe(true);
  });

  it('a newly required field is breaking; an optional one is not; required → optional is not', () => {
    const d = diffTools(
      [search],
      [
        searchWith((s) => {
          s.required = ['limit', 'language'];
          s.properties.language = { type: 'string' };
          s.properties.cursor = { type: 'string' };
        }),
      ],
    );
    expect(kinds(d)).toEqual([
      ['required-added', 'limit', true],
      ['required-added', 'language', true],
      ['required-removed', 'query', false],
      ['property-added', 'cursor', false],
    ]);
    expect(d.changes.map((c) => c.detail)).toEqual([
      'property limit became required',
      'new required property language',
      'property query is now optional',
      'new optional property cursor',
    ]);
    expect(d.changedTools).toEqual(['search']);
  });

  it('a removed property is breaking, in nested objects too', () => {
    const d = diffTools(
      [search],
      [
        searchWith((s) => {
          delete s.properties.sort;
          delete (s.properties.filters as { properties: Record<string, unknown> }).properties.tags;
          s.additionalProperties = false;
        }),
      ],
    );
    expect(kinds(d)).toEqual([
      ['property-removed', 'sort', true],
      ['property-removed', 'filters.tags', true],
      ['additional-properties-changed', '', true],
    ]);
    expect(d.changes[0]?.detail).toBe('property sort was removed; calls that pass it are now rejected');
  });

  it('type changes: narrowing is breaking, widening is not', () => {
    const narrowed = diffTools([search], [searchWith((s) => (s.properties.query!.type = 'integer'))]);
    expect(narrowed.changes[0]).toMatchObject({
      kind: 'type-changed',
      path: 'query',
      breaking: true,
      detail: 'property query type changed from string to integer (no longer accepts string)',
    });
    const widened = diffTools([search], [searchWith((s) => (s.properties.limit!.type = 'number'))]);
    expect(kinds(widened)).toEqual([['type-changed', 'limit', false]]);
    const nullable = diffTools(
      [search],
      [searchWith((s) => (s.properties.query!.type = ['string', 'null']))],
    );
    expect(kinds(nullable)).toEqual([['type-changed', 'query', false]]);
    const items = diffTools(
      [search],
      [
        searchWith(
          (s) =>
            ((s.properties.filters as { properties: { tags: { items: unknown } } }).properties.tags.items = {
              type: 'integer',
            }),
        ),
      ],
    );
    expect(kinds(items)).toEqual([['type-changed', 'filters.tags[]', true]]);
  });

  it('enums and constraints: narrowing is breaking, widening is not', () => {
    const d = diffTools(
      [search],
      [
        searchWith((s) => {
          s.properties.sort!.enum = ['relevance', 'popularity'];
          s.properties.limit!.maximum = 50;
          s.properties.query!.minLength = 0;
          s.properties.query!.pattern = '^[a-z]+$';
          s.properties.limit!.default = 20;
        }),
      ],
    );
    expect(kinds(d)).toEqual([
      ['constraint-changed', 'query', false],
      ['constraint-changed', 'query', true],
      ['constraint-changed', 'limit', true],
      ['default-changed', 'limit', false],
      ['enum-changed', 'sort', true],
    ]);
    expect(d.changes.find((c) => c.kind === 'enum-changed')?.detail).toBe(
      'property sort no longer accepts "date"; now also accepts "popularity"',
    );
  });

  it('follows local $refs', () => {
    const withRef = (kindType: string): McpTool => ({
      name: 'query',
      inputSchema: {
        type: 'object',
        $defs: { Filter: { type: 'object', properties: { kind: { type: kindType } } } },
        properties: { filter: { $ref: '#/$defs/Filter' } },
      },
    });
    expect(kinds(diffTools([withRef('string')], [withRef('string')]))).toEqual([]);
    expect(kinds(diffTools([withRef('string')], [withRef('boolean')]))).toEqual([
      ['type-changed', 'filter.kind', true],
    ]);
  });

  it('description changes are reported but not breaking', () => {
    const d = diffTools([search], [{ ...search, description: 'Search all documents' }]);
    expect(kinds(d)).toEqual([['description-changed', '', false]]);
    expect(d.baseline.hash).not.toBe(d.candidate.hash);
  });

  it('flags a breaking change under a non-major bump, with 0.x minor counting as major', () => {
    const broken = [search];
    const base = [search, fetchTool];
    expect(diffTools(base, broken, { baseline: '1.4.2', candidate: '1.5.0' })).toMatchObject({
      bump: 'minor',
      violation:
        'breaking change under a non-major bump: 1.4.2 → 1.5.0 (tool fetch was removed); a breaking change needs 2.0.0',
    });
    expect(diffTools(base, broken, { baseline: '1.4.2', candidate: '2.0.0' })).toMatchObject({
      bump: 'major',
      violation: null,
    });
    expect(diffTools(base, broken, { baseline: '0.3.1', candidate: '0.4.0' })).toMatchObject({
      bump: 'minor',
      violation: null,
    });
    expect(diffTools(base, broken, { baseline: '0.3.1', candidate: '0.3.2' }).violation).toBe(
      'breaking change under a non-major bump: 0.3.1 → 0.3.2 (tool fetch was removed); under 1.0.0 a breaking change needs at least 0.4.0',
    );
    expect(diffTools(base, broken, { baseline: '1.4.2', candidate: '1.5.0-rc.1' }).violation).toMatch(
      /^breaking change under a non-major bump/,
    );
    // no breaking change: any bump is fine
    expect(diffTools(broken, base, { baseline: '1.4.2', candidate: '1.4.3' })).toMatchObject({
      bump: 'patch',
      breaking: false,
      violation: null,
    });
    // pre-release baselines promise nothing; downgrades are not release steps
    expect(diffTools(base, broken, { baseline: '2.0.0-rc.1', candidate: '2.0.0' }).violation).toBeNull();
    expect(diffTools(base, broken, { baseline: '1.5.0', candidate: '1.4.0' })).toMatchObject({
      bump: 'downgrade',
      violation: null,
    });
  });

  it('lists the first breaking changes in the violation and counts the rest', () => {
    const d = diffTools(
      [search, fetchTool, { name: 'a' }, { name: 'b' }],
      [searchWith((s) => (s.required = ['query', 'limit']))],
      { baseline: '3.0.0', candidate: '3.1.0' },
    );
    expect(d.violation).toBe(
      'breaking change under a non-major bump: 3.0.0 → 3.1.0 (tool a was removed; tool b was removed; tool fetch was removed; 1 more); a breaking change needs 4.0.0',
    );
  });

  it('refuses invalid versions and malformed tool lists', () => {
    expect(() => diffTools([], [], { baseline: 'v1', candidate: '1.0.0' })).toThrow(BadRequestError);
    expect(() => diffTools([search, search], [])).toThrow(
      'the baseline tools/list result lists tool "search" twice',
    );
    expect(() => diffTools([], [{ description: 'x' } as McpTool])).toThrow(
      'every tool in the candidate tools/list result needs a name',
    );
    expect(() => diffTools({} as never, [])).toThrow(/must be an array/);
  });
});

describe('tool-schema hash', () => {
  it('is canonical: key order, tool order and set-like arrays do not matter', () => {
    const a: McpTool = {
      name: 'x',
      inputSchema: { type: 'object', required: ['a', 'b'], properties: { b: {}, a: {} } },
    };
    const b: McpTool = {
      inputSchema: { properties: { a: {}, b: {} }, required: ['b', 'a'], type: 'object' },
      name: 'x',
    };
    expect(toolsHash([a, fetchTool])).toBe(toolsHash([fetchTool, b]));
    expect(toolsHash([a])).not.toBe(toolsHash([{ ...a, description: 'd' }]));
    expect(toolsHash([])).toBe('4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945'); // sha256("[]")
  });

  it('canonical JSON sorts keys at every level and drops undefined members', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: undefined }], c: 'x' } })).toBe(
      '{"a":{"c":"x","d":[1,{"z":1}]},"b":1}',
    );
  });
});
