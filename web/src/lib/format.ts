// Number and time formatting shared by every page.

export const dash = '—';

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  return value >= 1000
    ? `${(value / 1000).toFixed(2)} s`
    : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

export function pct(value: number | null | undefined, digits = 2): string {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  return `${(value * 100).toFixed(digits)} %`;
}

export function rate(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  return `${value < 10 ? value.toFixed(2) : Math.round(value)} req/s`;
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined || Number.isNaN(value)) return dash;
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
}

/** A signed relative change, e.g. +12.5 %. */
export function change(relative: number | null | undefined): string {
  if (relative === null || relative === undefined || !Number.isFinite(relative)) return dash;
  const sign = relative > 0 ? '+' : '';
  return `${sign}${(relative * 100).toFixed(1)} %`;
}

export function time(value: string | number | null | undefined): string {
  if (value === null || value === undefined) return dash;
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return dash;
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function ago(value: string | number | null | undefined, now = Date.now()): string {
  if (value === null || value === undefined) return dash;
  const t = new Date(value).getTime();
  if (Number.isNaN(t)) return dash;
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86_400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86_400)}d ago`;
}

/** Semver precedence, highest first (pre-releases below their release), for lists the API did not sort. */
export function compareSemverDesc(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', pre] = v.split('+')[0]!.split(/-(.*)/s);
    return { nums: core.split('.').map(Number), pre: pre ? pre.split('.') : [] };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++)
    if ((x.nums[i] ?? 0) !== (y.nums[i] ?? 0)) return (y.nums[i] ?? 0) - (x.nums[i] ?? 0);
  if (!x.pre.length || !y.pre.length) return x.pre.length - y.pre.length;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return 1;
    if (q === undefined) return -1;
    if (p === q) continue;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) return Number(q) - Number(p);
    if (pn !== qn) return pn ? 1 : -1;
    return q < p ? -1 : 1;
  }
  return 0;
}

/** Badge tone of a status word (version, deployment, alert, verdict). */
export function tone(status: string | null | undefined): 'ok' | 'warn' | 'bad' | 'info' | 'muted' {
  switch (status) {
    case 'stable':
    case 'succeeded':
    case 'pass':
    case 'passing':
    case 'healthy':
    case 'resolved':
    case 'active':
      return 'ok';
    case 'release-candidate':
    case 'progressing':
    case 'verifying':
    case 'pending':
    case 'running':
    case 'canary':
    case 'development':
      return 'info';
    case 'paused':
    case 'marginal':
    case 'deprecated':
    case 'warning':
    case 'inconclusive':
    case 'silenced':
    case 'acknowledged':
      return 'warn';
    case 'failed':
    case 'fail':
    case 'failing':
    case 'firing':
    case 'critical':
    case 'rolled-back':
    case 'aborted':
    case 'unhealthy':
      return 'bad';
    default:
      return 'muted';
  }
}
