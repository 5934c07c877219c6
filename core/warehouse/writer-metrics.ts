import { metrics, type Counter, type Histogram, type MeterProvider } from '@opentelemetry/api';
import type { TelemetryTable } from './spool.ts';

/** What a writer reports to its gauges. */
export interface WriterGauges {
  bufferedRows: number;
  spoolFiles: number;
  spoolBytes: number;
  walBytes: number;
}

/**
 * Self-telemetry of the telemetry writers. Instruments are made from the meter provider registered
 * when they are first needed, and again when another one is registered (self-telemetry starts
 * after the writer, or restarts in tests); the gauges report over every open writer.
 */
export interface WriterInstruments {
  provider: MeterProvider;
  accepted: Counter;
  rejected: Counter;
  spooled: Counter;
  inserted: Counter;
  invalid: Counter;
  repaired: Counter;
  batchSize: Histogram;
  insertDuration: Histogram;
}

const live = new Set<{ gauges(): WriterGauges }>();
let current: WriterInstruments | undefined;

/** Counts a writer in the gauges until {@link forgetWriter}. */
export function watchWriter(writer: { gauges(): WriterGauges }): void {
  live.add(writer);
  instruments();
}

export function forgetWriter(writer: { gauges(): WriterGauges }): void {
  live.delete(writer);
}

export function countRows(
  what: 'accepted' | 'rejected' | 'spooled' | 'inserted',
  table: TelemetryTable,
  rows: number,
  status?: number,
): void {
  const i = instruments();
  const attributes = { 'pylee.table': table };
  if (what === 'accepted') i.accepted.add(rows, attributes);
  else if (what === 'spooled') i.spooled.add(rows, attributes);
  else if (what === 'inserted') i.inserted.add(rows, attributes);
  else i.rejected.add(rows, { ...attributes, 'http.response.status_code': status ?? 503 });
}

export function instruments(): WriterInstruments {
  const provider = metrics.getMeterProvider();
  if (current?.provider === provider) return current;
  const meter = provider.getMeter('pylee');
  const rows = (name: string, description: string) =>
    meter.createCounter(name, { description, unit: '{row}' });
  current = {
    provider,
    accepted: rows(
      'pylee.collector.rows.accepted',
      'Rows (requests, metric points, session events) the writer accepted',
    ),
    rejected: rows(
      'pylee.collector.rows.rejected',
      'Rows refused with 429 or 503 because the writer was overloaded',
    ),
    spooled: rows(
      'pylee.collector.rows.spooled',
      'Rows written to the on-disk spool while ClickHouse was slow or down',
    ),
    inserted: rows('pylee.collector.rows.inserted', 'Rows inserted into ClickHouse'),
    invalid: rows(
      'pylee.collector.rows.invalid',
      'Accepted rows ClickHouse refused for their values, kept in the spool rejected/ directory',
    ),
    repaired: meter.createCounter('pylee.collector.values.repaired', {
      description:
        'Values made valid for their column before batching (bad UTF-8, out of range, NaN, too long)',
      unit: '{value}',
    }),
    batchSize: meter.createHistogram('pylee.collector.batch.size', {
      description: 'Rows per ClickHouse insert',
      unit: '{row}',
      advice: {
        explicitBucketBoundaries: [1, 10, 100, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000],
      },
    }),
    insertDuration: meter.createHistogram('pylee.collector.insert.duration', {
      description: 'Duration of ClickHouse inserts of telemetry batches',
      unit: 's',
      advice: { explicitBucketBoundaries: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] },
    }),
  };
  const gauge = (name: string, description: string, unit: string, pick: (g: WriterGauges) => number) =>
    meter
      .createObservableGauge(name, { description, unit })
      .addCallback((result) => result.observe(sum(pick)));
  gauge(
    'pylee.collector.queue.depth',
    'Rows held in memory by the telemetry writer',
    '{row}',
    (g) => g.bufferedRows,
  );
  gauge('pylee.collector.spool.bytes', 'Size of the telemetry spool on disk', 'By', (g) => g.spoolBytes);
  gauge(
    'pylee.collector.spool.files',
    'Batches waiting in the telemetry spool',
    '{file}',
    (g) => g.spoolFiles,
  );
  gauge(
    'pylee.collector.wal.bytes',
    'Size of the telemetry write-ahead log on disk',
    'By',
    (g) => g.walBytes,
  );
  return current;
}

function sum(pick: (gauges: WriterGauges) => number): number {
  let total = 0;
  for (const writer of live) total += pick(writer.gauges());
  return total;
}
