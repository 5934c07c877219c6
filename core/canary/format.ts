/** Numbers as people read them in canary reasons and reports. */

/** Four significant digits, scientific outside 1e-4 … 1e6: 0.0123, 132.5, 1.50e-7. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n === 0) return '0';
  const a = Math.abs(n);
  if (a >= 1e6 || a < 1e-4) return n.toPrecision(3);
  return String(Number(n.toPrecision(4)));
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

const signOf = (v: number, signed: boolean) => (v < 0 ? '−' : signed && v > 0 ? '+' : '');

/** A value in its unit: ratio as %, ms (s from 1000), bytes in binary multiples; null → "—". */
export function formatValue(v: number | null, unit: string | null, signed = false): string {
  if (v === null || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  let text: string;
  switch (unit) {
    case 'ratio':
      text = `${fmt(a * 100)}%`;
      break;
    case 'ms':
      text = a >= 1000 ? `${fmt(a / 1000)} s` : `${fmt(a)} ms`;
      break;
    case 'bytes': {
      let x = a;
      let i = 0;
      while (x >= 1024 && i < BYTE_UNITS.length - 1) {
        x /= 1024;
        i++;
      }
      text = `${fmt(x)} ${BYTE_UNITS[i]}`;
      break;
    }
    case null:
    case 'count':
      text = fmt(a);
      break;
    default:
      text = `${fmt(a)} ${unit}`;
  }
  return signOf(v, signed) + text;
}

/** A difference in the metric's unit, always signed; differences of ratios in percentage points. */
export function formatDelta(v: number, unit: string | null): string {
  if (unit === 'ratio') return `${signOf(v, true)}${fmt(Math.abs(v) * 100)} pp`;
  return formatValue(v, unit, true);
}

/** A relative change: +10%, −3.2%. */
export const formatPercent = (r: number): string => `${signOf(r, true)}${fmt(Math.abs(r) * 100)}%`;
