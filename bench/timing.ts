/** One measured case of a benchmark: median and p99 wall time over `runs` after one warm-up. */
export interface TimedRow {
  case: string;
  runs: number;
  medianMs: number;
  p99Ms: number;
}

export const quantile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
};

/** Runs `fn` once to warm up, then `runs` times, and gives the median and p99 in ms (2 decimals). */
export async function time(name: string, runs: number, fn: () => Promise<unknown>): Promise<TimedRow> {
  await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  const r = (x: number) => Math.round(x * 100) / 100;
  return { case: name, runs, medianMs: r(quantile(times, 0.5)), p99Ms: r(quantile(times, 0.99)) };
}
