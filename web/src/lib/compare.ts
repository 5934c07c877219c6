// Shared by the compare page and the canary report: window arithmetic and series alignment.
import type { Series, SeriesPoint } from './api';

export const WINDOWS: Record<string, number> = {
  '15m': 900,
  '1h': 3600,
  '6h': 21_600,
  '24h': 86_400,
  '7d': 604_800,
};

/** An explicit from/to for a window ending now, so every request of a page covers the same buckets. */
export function windowRange(window: string, now = Date.now()) {
  const seconds = WINDOWS[window] ?? 3600;
  return {
    from: new Date(now - seconds * 1000).toISOString(),
    to: new Date(now).toISOString(),
    step: Math.max(60, Math.round(seconds / 60)),
  };
}

/** Both versions' points on one time axis (seconds), a value per version per time (null where missing). */
export function align(a: Series, b: Series, pick: (p: SeriesPoint) => number | null) {
  const times = [...new Set([...a.points, ...b.points].map((p) => Date.parse(p.time) / 1000))].sort(
    (x, y) => x - y,
  );
  const index = (s: Series) => new Map(s.points.map((p) => [Date.parse(p.time) / 1000, p]));
  const ia = index(a);
  const ib = index(b);
  // A bucket without requests has no latency or error rate (the API answers null: a gap in the
  // line, not a zero); its throughput is a real 0, and CPU and memory are reported apart from requests.
  const value = (m: Map<number, SeriesPoint>, t: number) => {
    const p = m.get(t);
    return p ? pick(p) : null;
  };
  return { times, a: times.map((t) => value(ia, t)), b: times.map((t) => value(ib, t)) };
}
