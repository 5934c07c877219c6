import { request, seg, type Alert } from './api';

export interface Matcher {
  name: string;
  op: string;
  value: string;
}

export interface Inhibition {
  id: string;
  name: string | null;
  sourceMatchers: Matcher[];
  targetMatchers: Matcher[];
  equal: string[];
  comment: string | null;
  createdBy: string;
  createdAt: string;
  updatedAt: string;
}

/** Why an alert's notifications began (muted) or stopped (released) being kept back. */
export interface MutedBy {
  kind: string;
  state: 'muted' | 'released';
  inhibitionId?: string;
  inhibitionName?: string | null;
  source?: { alertId: string; fingerprint: string; alertname: string; labels: Record<string, string> };
}

export interface AlertHistoryEvent {
  id: string;
  from: string;
  to: string;
  value: number | null;
  threshold: number | null;
  reason: string;
  at: string;
  mutedBy?: MutedBy | null;
}

export type AlertDetail = Alert & { id: string; history: AlertHistoryEvent[] };

export const inhibitionsApi = {
  list: () => request<{ inhibitions: Inhibition[] }>('GET', '/inhibitions').then((r) => r.inhibitions),
  create: (body: {
    name: string | null;
    sourceMatchers: Matcher[];
    targetMatchers: Matcher[];
    equal: string[];
    comment: string | null;
  }) => request<Inhibition>('POST', '/inhibitions', { body }),
  remove: (id: string) => request<Inhibition>('DELETE', `/inhibitions/${seg(id)}`),
  alert: (id: string) => request<AlertDetail>('GET', `/alerts/${seg(id)}`),
};

const MATCHER = /^\s*([^\s=!~]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$/s;

/**
 * `severity=critical, environment=~prod|staging` (or one per line) → matchers; a value may be
 * quoted. A comma splits only where another matcher starts, so regexes may hold commas. Text that
 * is not a matcher is passed on as a name, for the API to say what is wrong with it.
 */
export function parseMatchers(text: string): Matcher[] {
  return text
    .split(/\n|,(?=\s*[a-zA-Z_][a-zA-Z0-9_.]*\s*(?:=~|!~|!=|=))/)
    .map((part) => part.trim())
    .filter(Boolean)
    .map((part) => {
      const m = MATCHER.exec(part);
      if (!m) return { name: part, op: '=', value: '' };
      let value = m[3] as string;
      if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
      return { name: m[1] as string, op: m[2] as string, value };
    });
}

export const showMatchers = (ms: Matcher[] | undefined) =>
  (ms ?? []).map((m) => `${m.name}${m.op}"${m.value}"`).join(', ');

export const showLabels = (labels: Record<string, string> | undefined) =>
  Object.entries(labels ?? {})
    .filter(([k]) => k !== 'alertname')
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v}"`)
    .join(', ');
