/**
 * The one line messages carry (Slack, webhooks, canary verdicts):
 * `Changed: @acme/db 2.1.0 → 3.0.0; TIMEOUT_MS 30000 → 5000 (server+production, 2 h ago, alice)`.
 */
import type { ChangeRow } from './diff.ts';

/** "45 s", "3 min", "2 h", "3 d". */
export function agoText(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.round(min / 60);
  if (h < 48) return `${h} h`;
  return `${Math.round(h / 24)} d`;
}

/** Lower first: what most likely explains a regression. */
function rank(row: ChangeRow): number {
  switch (row.kind) {
    case 'breaking':
      return row.breaking ? 0 : 6;
    case 'package-changed':
      return row.distance === 'major' ? 1 : 4;
    case 'contract':
      return row.breaking ? 1 : 7;
    case 'remote-changed':
    case 'remote-added':
    case 'remote-removed':
    case 'resolved-variable-changed':
    case 'secret-changed':
      return 2;
    case 'configuration-event':
      return 3;
    case 'package-added':
    case 'package-removed':
      return 4;
    default:
      return 5;
  }
}

const SCOPED = new Set<ChangeRow['kind']>([
  'resolved-variable-changed',
  'secret-changed',
  'configuration-event',
]);
const or = (value: string | null, fallback: string) => value ?? fallback;

function phrase(row: ChangeRow): string {
  switch (row.kind) {
    case 'package-changed':
      return row.before === row.after
        ? `${row.name} ${row.after} (${row.detail ?? 'changed'})`
        : `${row.name} ${row.before} → ${row.after}`;
    case 'package-added':
      return `added ${row.name} ${row.after}`;
    case 'package-removed':
      return `removed ${row.name} ${row.before}`;
    case 'remote-changed':
      return row.before === row.after
        ? `remote ${row.name} (${row.detail ?? 'changed'})`
        : `remote ${row.before} → ${row.after}`;
    case 'remote-added':
      return `added remote ${row.after}`;
    case 'remote-removed':
      return `removed remote ${row.before}`;
    case 'variable-declared':
      return `declares ${row.name} (${row.after})`;
    case 'variable-undeclared':
      return `no longer declares ${row.name}`;
    case 'variable-declaration-changed':
      return `${row.name} declaration ${row.before} → ${row.after}`;
    case 'resolved-variable-changed':
      return `${row.name} ${or(row.before, 'unset')} → ${or(row.after, 'unset')}`;
    case 'secret-changed':
      return `secret ${row.name} ${row.after === 'unset' ? 'unset' : row.before === 'unset' ? 'set' : 'changed'}`;
    case 'configuration-event':
      return row.detail?.startsWith('secret')
        ? `secret ${row.name} ${row.after === 'unset' ? 'deleted' : row.after === 'rotated' ? 'rotated' : 'set'}`
        : `${row.name} ${or(row.before, 'unset')} → ${or(row.after, 'unset')}`;
    case 'breaking':
      return row.breaking ? 'breaking version' : 'no longer marked breaking';
    case 'contract':
      return row.detail ?? `contract of ${row.name} changed`;
  }
}

function context(row: ChangeRow, now: number): string {
  if (!SCOPED.has(row.kind)) return '';
  const parts = [row.scope];
  if (row.at) parts.push(`${agoText(now - Date.parse(row.at))} ago`);
  if (row.actor) parts.push(row.actor);
  return ` (${parts.join(', ')})`;
}

/**
 * The top `max` changes in one line, most likely causes first (a breaking version, a major
 * package bump or breaking contract change, then remotes, variables and secrets, then audited
 * configuration events); a name appears once. '' when there is nothing. Pure: the same rows and
 * `now` give the same text.
 */
export function summarizeChanges(
  rows: readonly ChangeRow[],
  max = 3,
  now: number | Date = Date.now(),
): string {
  const at = typeof now === 'number' ? now : now.getTime();
  const ordered = rows
    .map((row, i) => ({ row, i }))
    .sort((a, b) => rank(a.row) - rank(b.row) || a.i - b.i)
    .map((x) => x.row);
  const seen = new Set<string>();
  const picked: ChangeRow[] = [];
  let distinct = 0;
  for (const row of ordered) {
    const key =
      row.kind === 'contract' || row.kind === 'breaking' ? `${row.kind}:${row.name}:${row.detail}` : row.name;
    if (seen.has(key)) continue;
    seen.add(key);
    distinct++;
    if (picked.length < max) picked.push(row);
  }
  if (picked.length === 0) return '';
  const more = distinct - picked.length;
  return `Changed: ${picked.map((r) => `${phrase(r)}${context(r, at)}`).join('; ')}${more > 0 ? `; ${more} more` : ''}`;
}
