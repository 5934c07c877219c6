/** Prometheus-style durations (`500ms`, `30s`, `5m`, `1h`, `1d`, `1h30m`), as rules are written. */
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+)(ms|s|m|h|d)/y;

/** Milliseconds of `text`, or undefined when it is not a duration. `0s` is one. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  PART.lastIndex = 0;
  let total = 0;
  let parts = 0;
  while (PART.lastIndex < text.length) {
    const match = PART.exec(text);
    if (!match) return undefined;
    total += Number(match[1]) * (UNITS[match[2] as string] as number);
    parts++;
  }
  return parts > 0 && Number.isSafeInteger(total) ? total : undefined;
}

/** The shortest text for `ms`: 90000 → `1m30s`, 0 → `0s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let text = '';
  for (const unit of ['d', 'h', 'm', 's', 'ms']) {
    const size = UNITS[unit] as number;
    if (rest >= size) {
      text += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return text;
}
