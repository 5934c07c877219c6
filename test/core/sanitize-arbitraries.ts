import fc from 'fast-check';
import type { TableSpec } from '#core/warehouse/sanitize.ts';

type Loose = Record<string, unknown>;

/**
 * Rows of arbitrary values for a table, one arbitrary per column kind, built from the table's
 * column spec so a new column is covered without editing the tests. `histogram` gives a
 * histogram's bounds and bucket counts together (they are only valid as a pair); `columns`
 * overrides the arbitrary of named columns.
 */
export function rowsOf<Row>(
  spec: TableSpec<Row>,
  kinds: {
    string: fc.Arbitrary<unknown>;
    number: fc.Arbitrary<unknown>;
    time: fc.Arbitrary<unknown>;
    histogram?: fc.Arbitrary<[unknown, unknown]>;
    columns?: Record<string, fc.Arbitrary<unknown>>;
  },
): fc.Arbitrary<Loose> {
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, column] of Object.entries(spec.columns) as [string, { kind: string }][]) {
    if (spec.histogram && (name === spec.histogram.bounds || name === spec.histogram.counts)) continue;
    record[name] =
      kinds.columns?.[name] ??
      (column.kind === 'string' || column.kind === 'lowcard'
        ? kinds.string
        : column.kind === 'datetime64'
          ? kinds.time
          : kinds.number);
  }
  const rows = fc.record(record) as fc.Arbitrary<Loose>;
  const histogram = spec.histogram;
  if (!histogram || !kinds.histogram) return rows;
  return fc
    .tuple(rows, kinds.histogram)
    .map(([row, [bounds, counts]]) => ({ ...row, [histogram.bounds]: bounds, [histogram.counts]: counts }));
}
