import { createHash } from 'node:crypto';
import type { AnyValue, Attributes } from './otlp/decode.ts';

/**
 * Cumulative → delta conversion for OTLP metric series.
 *
 * A cumulative point carries the total since its series' start time; Pylee stores deltas over
 * [start_time, time]. For each series — keyed by org, resource identity (all resource attributes),
 * instrumentation scope, metric name and data-point attributes — the tracker remembers the last
 * cumulative point and answers the difference to the next one:
 *
 * - The first point of a series (or the first after the series was evicted) counts in full: its
 *   delta is its own value over its own [start_time, time], because everything it holds happened
 *   after its start time, which Pylee has not seen before.
 * - A changed start time, or any count / monotonic value going down, is a reset (the process
 *   restarted): the point's own value is the delta, again over its own [start_time, time].
 * - A point no newer than the last one seen (a retried export, or out of order) yields nothing.
 *
 * A {@link DeltaBatch} (one export request) updates the state at once, so concurrent requests for
 * the same series chain their deltas instead of counting the same increase twice. When the rows
 * could not be stored, `rollback()` restores each series the batch changed — unless a later
 * request changed it since — so the exporter's retry of the refused request is diffed again
 * instead of being skipped as already seen. The tracker holds at most `maxSeries` series,
 * evicting the least recently updated.
 *
 * State is per process: at scale, an OTLP load balancer must route a series (by resource) to one
 * collector, as the OpenTelemetry Collector's cumulativetodelta processor also requires.
 */

export interface SumPoint {
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  value: number;
}

export interface HistogramPoint {
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  count: number;
  sum: number;
  bounds: readonly number[];
  bucketCounts: readonly number[];
}

export interface ExponentialSide {
  offset: number;
  bucketCounts: readonly number[];
}

export interface ExponentialPoint {
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  count: number;
  sum: number;
  scale: number;
  zeroCount: number;
  positive: ExponentialSide;
  negative: ExponentialSide;
}

/** A delta over [startTimeUnixNano, timeUnixNano], and whether a reset (or a first point) produced it. */
export type Delta<P> = P & { reset: boolean };

type State =
  | ({ kind: 'sum' } & SumPoint)
  | ({ kind: 'histogram' } & HistogramPoint)
  | ({ kind: 'exponential' } & ExponentialPoint);

/** The default bound on tracked series: some tens of MB for sums and explicit histograms of ~15 buckets. */
export const DEFAULT_MAX_SERIES = 100_000;

export class DeltaTracker {
  readonly maxSeries: number;
  private readonly series = new Map<string, State>();

  /** @param options.maxSeries - series kept before the least recently updated is dropped; @defaultValue 100 000 */
  constructor(options: { maxSeries?: number } = {}) {
    this.maxSeries = Math.max(1, options.maxSeries ?? DEFAULT_MAX_SERIES);
  }

  get size(): number {
    return this.series.size;
  }

  /** Starts the conversions of one request; `rollback()` undoes them if its rows were not stored. */
  batch(): DeltaBatch {
    return new DeltaBatch(this);
  }

  /** @internal */
  remove(key: string): void {
    this.series.delete(key);
  }

  /** @internal */
  read(key: string): State | undefined {
    return this.series.get(key);
  }

  /** @internal */
  write(key: string, state: State): void {
    this.series.delete(key);
    this.series.set(key, state);
    while (this.series.size > this.maxSeries) {
      const oldest = this.series.keys().next().value as string;
      this.series.delete(oldest);
    }
  }
}

export class DeltaBatch {
  private readonly tracker: DeltaTracker;
  /** Per series this batch changed: the state before its first change, and its last write. */
  private readonly undo = new Map<string, { before: State | undefined; written: State }>();

  constructor(tracker: DeltaTracker) {
    this.tracker = tracker;
  }

  private previous(key: string): State | undefined {
    return this.tracker.read(key);
  }

  private record(key: string, state: State): void {
    const before = this.undo.has(key) ? this.undo.get(key)!.before : this.tracker.read(key);
    this.undo.set(key, { before, written: state });
    this.tracker.write(key, state);
  }

  /** A monotonic cumulative sum point → its delta, or undefined when it is not newer than the last. */
  sum(key: string, point: SumPoint): Delta<SumPoint> | undefined {
    const prev = this.previous(key);
    if (prev?.kind === 'sum' && stale(prev, point)) return undefined;
    this.record(key, { kind: 'sum', ...point });
    if (
      prev?.kind !== 'sum' ||
      prev.startTimeUnixNano !== point.startTimeUnixNano ||
      point.value < prev.value
    ) {
      return { ...point, reset: true };
    }
    return { ...point, startTimeUnixNano: prev.timeUnixNano, value: point.value - prev.value, reset: false };
  }

  /** A cumulative explicit-bucket histogram point → its delta, or undefined when it is not newer. */
  histogram(key: string, point: HistogramPoint): Delta<HistogramPoint> | undefined {
    const prev = this.previous(key);
    if (prev?.kind === 'histogram' && stale(prev, point)) return undefined;
    this.record(key, { kind: 'histogram', ...point });
    if (
      prev?.kind !== 'histogram' ||
      prev.startTimeUnixNano !== point.startTimeUnixNano ||
      point.count < prev.count ||
      !sameNumbers(prev.bounds, point.bounds) ||
      prev.bucketCounts.length !== point.bucketCounts.length
    ) {
      return { ...point, reset: true };
    }
    const bucketCounts = point.bucketCounts.map((c, i) => c - prev.bucketCounts[i]!);
    if (bucketCounts.some((c) => c < 0)) return { ...point, reset: true };
    return {
      ...point,
      startTimeUnixNano: prev.timeUnixNano,
      count: point.count - prev.count,
      sum: point.sum - prev.sum,
      bucketCounts,
      reset: false,
    };
  }

  /** A cumulative exponential histogram point → its delta (at the point's scale), or undefined when not newer. */
  exponential(key: string, point: ExponentialPoint): Delta<ExponentialPoint> | undefined {
    const prev = this.previous(key);
    if (prev?.kind === 'exponential' && stale(prev, point)) return undefined;
    this.record(key, { kind: 'exponential', ...point });
    if (
      prev?.kind !== 'exponential' ||
      prev.startTimeUnixNano !== point.startTimeUnixNano ||
      point.count < prev.count ||
      point.zeroCount < prev.zeroCount ||
      // A cumulative series only ever lowers its scale; a higher one means a new series.
      point.scale > prev.scale
    ) {
      return { ...point, reset: true };
    }
    const positive = subtractSide(point.positive, downscale(prev.positive, prev.scale - point.scale));
    const negative = subtractSide(point.negative, downscale(prev.negative, prev.scale - point.scale));
    if (!positive || !negative) return { ...point, reset: true };
    return {
      ...point,
      startTimeUnixNano: prev.timeUnixNano,
      count: point.count - prev.count,
      sum: point.sum - prev.sum,
      zeroCount: point.zeroCount - prev.zeroCount,
      positive,
      negative,
      reset: false,
    };
  }

  /**
   * Undoes this batch's changes, for rows that could not be stored: each series goes back to its
   * state before the batch, unless another request has changed it since.
   */
  rollback(): void {
    for (const [key, { before, written }] of this.undo) {
      if (this.tracker.read(key) !== written) continue;
      if (before) this.tracker.write(key, before);
      else this.tracker.remove(key);
    }
    this.undo.clear();
  }
}

function stale(prev: State, point: { startTimeUnixNano: bigint; timeUnixNano: bigint }): boolean {
  return prev.startTimeUnixNano === point.startTimeUnixNano && point.timeUnixNano <= prev.timeUnixNano;
}

function sameNumbers(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Merges buckets pairwise `by` times (scale s → s - by): bucket index i becomes i >> by. */
export function downscale(side: ExponentialSide, by: number): ExponentialSide {
  if (by <= 0 || side.bucketCounts.length === 0) return side;
  const factor = 2 ** by;
  const first = Math.floor(side.offset / factor);
  const counts: number[] = [];
  side.bucketCounts.forEach((count, i) => {
    const j = Math.floor((side.offset + i) / factor) - first;
    counts[j] = (counts[j] ?? 0) + count;
  });
  return { offset: first, bucketCounts: Array.from(counts, (c) => c ?? 0) };
}

/** `a - b` by absolute bucket index; undefined when some bucket would go negative (a reset). */
function subtractSide(a: ExponentialSide, b: ExponentialSide): ExponentialSide | undefined {
  const counts = [...a.bucketCounts];
  for (let i = 0; i < b.bucketCounts.length; i++) {
    const count = b.bucketCounts[i]!;
    if (count === 0) continue;
    const j = b.offset + i - a.offset;
    if (j < 0 || j >= counts.length || counts[j]! < count) return undefined;
    counts[j] = counts[j]! - count;
  }
  return { offset: a.offset, bucketCounts: counts };
}

/**
 * The identity of one metric series, as a fixed-size hash: org, every resource attribute, the
 * instrumentation scope, the metric name and every data-point attribute.
 */
export function seriesKey(parts: {
  orgId: string;
  resource: Attributes;
  scopeName: string;
  scopeVersion: string;
  metric: string;
  attributes: Attributes;
}): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify([parts.orgId, parts.scopeName, parts.scopeVersion, parts.metric]));
  hash.update('\u0000');
  hash.update(canonical(parts.resource));
  hash.update('\u0000');
  hash.update(canonical(parts.attributes));
  return hash.digest('base64');
}

/** A stable text form of an attribute value: map keys sorted, every value tagged with its type. */
export function canonical(value: AnyValue): string {
  if (value === null) return 'n';
  if (typeof value === 'string') return `s${JSON.stringify(value)}`;
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'bigint') return `i${value}`;
  if (typeof value === 'number') return `d${value}`;
  if (value instanceof Uint8Array) return `b${Buffer.from(value).toString('hex')}`;
  if (value instanceof Map) {
    const keys = [...value.keys()].sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value.get(k)!)}`).join(',')}}`;
  }
  return `[${(value as readonly AnyValue[]).map(canonical).join(',')}]`;
}
