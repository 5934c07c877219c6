import { BadRequestError } from '../errors.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d{1,7})(ms|s|m|h|d)$/;

/** The milliseconds of `30s`, `10m`, `1h`, `2d`; anything else is a 400 naming the field. */
export function parseDuration(
  field: string,
  value: string,
  limits = { minMs: 1000, maxMs: 30 * 86_400_000 },
) {
  const match = PATTERN.exec(value);
  const ms = match ? Number(match[1]) * (UNITS[match[2] as string] as number) : Number.NaN;
  if (!match || ms < limits.minMs || ms > limits.maxMs) {
    throw new BadRequestError(
      `${field} ${JSON.stringify(value)} is not a duration between ${formatDuration(limits.minMs)} and ${formatDuration(limits.maxMs)} (e.g. 30s, 10m, 1h, 2d)`,
      'invalid-duration',
    );
  }
  return ms;
}

/** `90000` → `1m30s`; the largest units first, for messages. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const parts: string[] = [];
  let rest = Math.round(ms / 1000);
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}
