/**
 * The canary analysis report: one JSON shape (what GET /api/v1/servers/{server}/analyses/{id}
 * returns) and two renderings of it — GitHub-flavoured Markdown for PR comments and Slack, and a
 * self-contained HTML page (inline CSS, no scripts, no external assets; a CSP meta tag forbids
 * loading anything). Every string that comes from users or servers (metric and tool names,
 * versions, reasons, contract details) is escaped, so markup in a tool name stays text.
 */
import type { ContractChange, ContractDiff } from './contract-diff.ts';
import type { Classification, EventCounts, GroupScore, JudgeResult, Verdict } from './judge.ts';
import { fmt, formatDelta, formatPercent, formatValue } from './format.ts';

export { formatValue };

export interface ReportRow {
  metric: string;
  /** MCP tool, or null for the whole server */
  operation: string | null;
  group: string;
  unit: string | null;
  /** mean of the judged baseline / canary samples */
  baseline: number | null;
  canary: number | null;
  change: { absolute: number | null; relative: number | null };
  classification: Classification;
  critical: boolean;
  criticalFailure: boolean;
  /** two-sided Mann-Whitney p-value */
  pValue: number | null;
  /** Hodges-Lehmann interval of the shift canary − baseline */
  interval: { lower: number; upper: number; confidence: number } | null;
  reason: string;
  /** count-based metrics (session_crash_rate): events of total per side, e.g. crashed of finished sessions */
  counts?: { canary: EventCounts; baseline: EventCounts };
}

export interface AnalysisReport {
  id: string;
  server: string;
  environment: string;
  baseline: { version: string };
  canary: { version: string };
  window: { start: string; end: string; intervalSeconds: number };
  createdAt: string;
  verdict: Verdict;
  score: number | null;
  reasons: string[];
  /** flagged but not part of the verdict, e.g. a breaking contract change under a non-major bump */
  warnings: string[];
  rows: ReportRow[];
  groups: GroupScore[];
  traffic: { canaryRequests: number; baselineRequests: number; intervals: number };
  thresholds: {
    pass: number;
    marginal: number;
    minRequestsPerInterval: number;
    minRequestsPerWindow: number;
    minIntervals: number;
  };
  contract: ContractDiff | null;
  /** What changed from the baseline to the canary (core/changes), when both are in the registry. */
  changes?: ReportChanges | null;
  /** end-to-end analysis time, filled in by the analysis job when it knows it */
  durationMs?: number | null;
}

/** The changes a report lists beside the regressions: one row per change. */
export interface ReportChanges {
  /** `Changed: @acme/db 2.1.0 → 3.0.0; …`; '' for none. */
  summary: string;
  baseline: string | null;
  rows: {
    kind: string;
    name: string;
    before: string | null;
    after: string | null;
    scope: string;
    actor: string | null;
    at: string | null;
  }[];
}

export interface ReportMeta {
  id: string;
  server: string;
  environment: string;
  baselineVersion: string;
  canaryVersion: string;
  window: { start: Date | string; end: Date | string; intervalSeconds: number };
  createdAt?: Date | string;
  durationMs?: number | null;
}

const iso = (d: Date | string) => (d instanceof Date ? d.toISOString() : d);

/** Assembles the report from the judge's result and, when health checks listed tools, the contract diff. */
export function buildReport(
  meta: ReportMeta,
  result: JudgeResult,
  contract: ContractDiff | null = null,
): AnalysisReport {
  return {
    id: meta.id,
    server: meta.server,
    environment: meta.environment,
    baseline: { version: meta.baselineVersion },
    canary: { version: meta.canaryVersion },
    window: {
      start: iso(meta.window.start),
      end: iso(meta.window.end),
      intervalSeconds: meta.window.intervalSeconds,
    },
    createdAt: iso(meta.createdAt ?? new Date()),
    verdict: result.verdict,
    score: result.score,
    reasons: [...result.reasons],
    warnings: contract?.violation ? [contract.violation] : [],
    rows: result.metrics.map((m) => ({
      metric: m.metric,
      operation: m.operation,
      group: m.group,
      unit: m.unit,
      baseline: m.baseline?.mean ?? null,
      canary: m.canary?.mean ?? null,
      change: m.change,
      classification: m.classification,
      critical: m.critical,
      criticalFailure: m.criticalFailure,
      pValue: m.pValue,
      interval: m.shift
        ? { lower: m.shift.lower, upper: m.shift.upper, confidence: m.shift.confidence }
        : null,
      reason: m.reason,
      ...(m.counts ? { counts: m.counts } : {}),
    })),
    groups: result.groups,
    traffic: result.traffic,
    thresholds: {
      pass: result.settings.passThreshold,
      marginal: result.settings.marginalThreshold,
      minRequestsPerInterval: result.settings.minRequestsPerInterval,
      minRequestsPerWindow: result.settings.minRequestsPerWindow,
      minIntervals: result.settings.minIntervals,
    },
    contract,
    durationMs: meta.durationMs ?? null,
  };
}

/** Exit status for `pylee canary report` as a CI gate: only a pass is 0. */
export function verdictExitCode(verdict: Verdict): number {
  return { pass: 0, fail: 1, marginal: 2, inconclusive: 3 }[verdict];
}

// ---- change and evidence formatting ------------------------------------------------------------

/** "+12 ms (+10%)"; a change of a ratio is in percentage points; from a zero baseline "(from 0)". */
export function formatChange(row: Pick<ReportRow, 'change' | 'unit' | 'baseline'>): string {
  const { absolute, relative } = row.change;
  if (absolute === null) return '—';
  const abs = absolute === 0 ? '0' : formatDelta(absolute, row.unit);
  if (relative !== null) return `${abs} (${formatPercent(relative)})`;
  return row.baseline === 0 && absolute !== 0 ? `${abs} (from 0)` : abs;
}

/** "p = 0.0012 · 98% [+3 ms, +9 ms]" */
export function formatEvidence(row: Pick<ReportRow, 'pValue' | 'interval' | 'unit'>): string {
  const parts: string[] = [];
  if (row.pValue !== null) parts.push(`p = ${fmt(row.pValue)}`);
  if (row.interval) {
    const f = (x: number) => (x === 0 ? '0' : formatDelta(x, row.unit));
    parts.push(`${fmt(row.interval.confidence * 100)}% [${f(row.interval.lower)}, ${f(row.interval.upper)}]`);
  }
  return parts.length ? parts.join(' · ') : '—';
}

const CLASS_TEXT: Record<Classification, string> = {
  Pass: 'Pass',
  High: 'High',
  Low: 'Low',
  NoData: 'No data',
  Error: 'Error',
};
const CLASS_ICON: Record<Classification, string> = {
  Pass: '✅',
  High: '🔺',
  Low: '🔻',
  NoData: '⚪',
  Error: '⚠️',
};
const VERDICT_ICON: Record<Verdict, string> = { pass: '✅', marginal: '🟡', fail: '❌', inconclusive: '⚪' };
const VERDICT_ACTION: Record<Verdict, string> = {
  pass: 'promote',
  marginal: 'hold for a person to decide',
  fail: 'roll back',
  inconclusive: 'hold: not enough evidence either way',
};

const classification = (r: ReportRow) =>
  `${CLASS_TEXT[r.classification]}${r.criticalFailure ? ' (critical)' : ''}`;

const scoreText = (score: number | null) => (score === null ? '—' : fmt(Math.round(score * 10) / 10));

/** What the score leaves out: metrics without data on either side have no weight in it. */
function unscored(report: AnalysisReport): string | null {
  const none = report.rows.filter((r) => r.classification === 'NoData').length;
  if (none === 0) return null;
  if (none === report.rows.length) return 'no metric had data, so nothing is scored';
  return `${none} of ${report.rows.length} metrics had no data and are not scored`;
}

const minutes = (seconds: number) => (seconds % 60 === 0 ? `${seconds / 60} min` : `${seconds} s`);

function changeSummary(contract: ContractDiff): string {
  const breaking = contract.changes.filter((c) => c.breaking).length;
  const other = contract.changes.length - breaking;
  if (contract.changes.length === 0) return 'no changes to the tools';
  return `${breaking} breaking, ${other} non-breaking change${other === 1 ? '' : 's'}`;
}

// ---- Markdown ---------------------------------------------------------------------------------

/**
 * Escapes text for GitHub-flavoured Markdown table cells and Slack: HTML-significant characters as
 * entities (both render &lt; as <), Markdown emphasis, code, link and table syntax with a
 * backslash, newlines as spaces.
 */
export function escapeMarkdown(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/[\\`*_[\]|~]/g, (c) => `\\${c}`)
    .replace(/\r?\n|\r/g, ' ');
}

const md = escapeMarkdown;

export function renderMarkdown(report: AnalysisReport): string {
  const lines: string[] = [];
  const t = report.thresholds;
  const note = unscored(report);
  lines.push(
    `### ${VERDICT_ICON[report.verdict]} Canary analysis: **${report.verdict}** — ${md(report.server)} ${md(report.canary.version)} vs ${md(report.baseline.version)} (${md(report.environment)})`,
    '',
    `**Score ${scoreText(report.score)}** (pass ≥ ${t.pass}, marginal ≥ ${t.marginal}) · recommended: ${VERDICT_ACTION[report.verdict]}${note === null ? '' : ` · ${note}`}`,
    '',
    `Window ${md(report.window.start)} → ${md(report.window.end)} (${report.traffic.intervals} × ${minutes(report.window.intervalSeconds)}) · requests: canary ${report.traffic.canaryRequests}, baseline ${report.traffic.baselineRequests}`,
    '',
  );
  if (report.reasons.length) {
    lines.push('**Why**', '');
    for (const r of report.reasons) lines.push(`- ${md(r)}`);
    lines.push('');
  }
  for (const w of report.warnings) lines.push(`> ⚠️ ${md(w)}`, '');
  lines.push(
    '| Metric | Operation | Baseline | Canary | Change | Result | p-value · interval | Reason |',
    '| --- | --- | ---: | ---: | ---: | --- | --- | --- |',
  );
  for (const r of report.rows) {
    lines.push(
      `| ${md(r.metric)} | ${r.operation === null ? '—' : md(r.operation)} | ${formatValue(r.baseline, r.unit)} | ${formatValue(r.canary, r.unit)} | ${formatChange(r)} | ${CLASS_ICON[r.classification]} ${classification(r)} | ${formatEvidence(r)} | ${md(r.reason)} |`,
    );
  }
  lines.push('');
  if (report.groups.length > 1) {
    lines.push(
      `Groups: ${report.groups.map((g) => `${md(g.name)} ${scoreText(g.score)}${g.weight === null ? '' : ` (weight ${fmt(g.weight)})`}`).join(' · ')}`,
      '',
    );
  }
  if (report.contract) lines.push(...contractMarkdown(report.contract));
  if (report.changes?.rows.length) lines.push(...changesMarkdown(report.changes));
  lines.push(
    `<sub>Analysis ${md(report.id)} · Mann-Whitney U with Hodges-Lehmann intervals · traffic minimums: ${t.minRequestsPerInterval} requests per interval, ${t.minRequestsPerWindow} per window, ${t.minIntervals} intervals</sub>`,
  );
  return lines.join('\n') + '\n';
}

/** Changes listed beside the regressions, at most this many (the API has them all). */
const MAX_CHANGE_ROWS = 20;

const changeText = (r: ReportChanges['rows'][number]) =>
  `${r.kind}: ${r.name}${r.before !== null || r.after !== null ? ` ${r.before ?? '—'} → ${r.after ?? '—'}` : ''}`;
const changeContext = (r: ReportChanges['rows'][number]) =>
  [r.scope, r.actor, r.at].filter((x): x is string => typeof x === 'string' && x !== '').join(', ');

function changesMarkdown(c: ReportChanges): string[] {
  const out = [`**What changed** since ${md(c.baseline ?? 'the baseline')}: ${md(c.summary)}`, ''];
  for (const r of c.rows.slice(0, MAX_CHANGE_ROWS)) {
    const context = changeContext(r);
    out.push(`- ${md(changeText(r))}${context ? ` (${md(context)})` : ''}`);
  }
  if (c.rows.length > MAX_CHANGE_ROWS) out.push(`- …and ${c.rows.length - MAX_CHANGE_ROWS} more`);
  out.push('');
  return out;
}

function contractMarkdown(c: ContractDiff): string[] {
  const out = [
    `**Contract** (tools/list): ${changeSummary(c)}; ${c.baseline.tools} → ${c.candidate.tools} tools`,
    '',
  ];
  for (const ch of c.changes)
    out.push(`- ${ch.breaking ? '**breaking**' : 'non-breaking'} · ${md(ch.tool)}: ${md(ch.detail)}`);
  if (c.changes.length) out.push('');
  return out;
}

// ---- HTML -------------------------------------------------------------------------------------

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

const h = escapeHtml;

const CSS = `
:root{color-scheme:light;--pass:#1a7f37;--fail:#cf222e;--marginal:#9a6700;--muted:#57606a;--line:#d0d7de}
*{box-sizing:border-box}body{font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328;background:#fff}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.banner{border-radius:8px;padding:16px 20px;color:#fff;margin-bottom:16px}
.banner.pass{background:var(--pass)}.banner.fail{background:var(--fail)}.banner.marginal{background:var(--marginal)}.banner.inconclusive{background:#6e7781}
.banner .verdict{font-size:28px;font-weight:700;text-transform:uppercase;letter-spacing:.03em}
.meta{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:8px 24px;color:var(--muted);margin:8px 0 0}
.meta b{color:#1f2328;font-weight:600}
ul.reasons{margin:0;padding-left:20px}
.warn{border-left:4px solid var(--marginal);background:#fff8c5;padding:8px 12px;margin:12px 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid var(--line);padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600;white-space:nowrap}th.num,td.num{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
.pill{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;white-space:nowrap}
.Pass{background:#dafbe1;color:var(--pass)}.High,.Low{background:#ffebe9;color:var(--fail)}.NoData{background:#eaeef2;color:var(--muted)}.Error{background:#fff8c5;color:var(--marginal)}
.crit{font-weight:700}.reason{color:var(--muted);min-width:260px}.ev{font-variant-numeric:tabular-nums;min-width:160px}.breaking{color:var(--fail);font-weight:600}
footer{color:var(--muted);font-size:12px;margin-top:28px}
@media (max-width:700px){main{padding:12px}.banner .verdict{font-size:22px}}
`;

export function renderHtml(report: AnalysisReport): string {
  const t = report.thresholds;
  const note = unscored(report);
  const rows = report.rows
    .map(
      (r) => `<tr>
<td>${h(r.metric)}${r.critical ? ' <span class="crit" title="critical metric">★</span>' : ''}</td>
<td>${r.operation === null ? '—' : h(r.operation)}</td>
<td class="num">${h(formatValue(r.baseline, r.unit))}</td>
<td class="num">${h(formatValue(r.canary, r.unit))}</td>
<td class="num">${h(formatChange(r))}</td>
<td><span class="pill ${r.classification}">${h(classification(r))}</span></td>
<td class="ev">${h(formatEvidence(r))}</td>
<td class="reason">${h(r.reason)}</td>
</tr>`,
    )
    .join('\n');
  const groups = report.groups
    .map(
      (g) =>
        `<tr><td>${h(g.name)}</td><td class="num">${h(scoreText(g.score))}</td><td class="num">${g.weight === null ? '—' : h(fmt(g.weight))}</td><td class="num">${g.counts.Pass}</td><td class="num">${g.counts.High + g.counts.Low}</td><td class="num">${g.counts.NoData + g.counts.Error}</td></tr>`,
    )
    .join('\n');
  const title = `Canary analysis ${report.verdict}: ${report.server} ${report.canary.version} vs ${report.baseline.version}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>${h(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<div class="banner ${report.verdict}">
<div class="verdict">${h(report.verdict)}</div>
<h1>${h(report.server)} ${h(report.canary.version)} vs ${h(report.baseline.version)} · ${h(report.environment)}</h1>
<div>Score <b>${h(scoreText(report.score))}</b> (pass ≥ ${t.pass}, marginal ≥ ${t.marginal}) · recommended: ${h(VERDICT_ACTION[report.verdict])}${note === null ? '' : ` · ${h(note)}`}</div>
</div>
<div class="meta">
<div>Window <b>${h(report.window.start)}</b> → <b>${h(report.window.end)}</b></div>
<div>Intervals <b>${report.traffic.intervals} × ${h(minutes(report.window.intervalSeconds))}</b></div>
<div>Requests <b>canary ${report.traffic.canaryRequests}</b>, <b>baseline ${report.traffic.baselineRequests}</b></div>
<div>Analysis <b>${h(report.id)}</b> · ${h(report.createdAt)}</div>
</div>
${report.reasons.length ? `<h2>Why</h2>\n<ul class="reasons">${report.reasons.map((r) => `<li>${h(r)}</li>`).join('')}</ul>` : ''}
${report.warnings.map((w) => `<div class="warn">⚠️ ${h(w)}</div>`).join('\n')}
<h2>Metrics</h2>
<div class="scroll"><table>
<thead><tr><th>Metric</th><th>Operation</th><th class="num">Baseline</th><th class="num">Canary</th><th class="num">Change</th><th>Result</th><th>p-value · interval</th><th>Reason</th></tr></thead>
<tbody>
${rows}
</tbody>
</table></div>
<h2>Groups</h2>
<div class="scroll"><table>
<thead><tr><th>Group</th><th class="num">Score</th><th class="num">Weight</th><th class="num">Pass</th><th class="num">High / Low</th><th class="num">No data</th></tr></thead>
<tbody>
${groups}
</tbody>
</table></div>
${report.contract ? contractHtml(report.contract) : ''}
${report.changes?.rows.length ? changesHtml(report.changes) : ''}
<footer>Mann-Whitney U test with Hodges-Lehmann confidence intervals; score = weighted share of passing metrics among those with data. Traffic minimums: ${t.minRequestsPerInterval} requests per interval, ${t.minRequestsPerWindow} per window, ${t.minIntervals} intervals.</footer>
</main>
</body>
</html>
`;
}

function changesHtml(c: ReportChanges): string {
  const rows = c.rows
    .slice(0, MAX_CHANGE_ROWS)
    .map(
      (r) =>
        `<tr><td>${h(r.kind)}</td><td>${h(r.name)}</td><td>${h(r.before ?? '—')}</td><td>${h(r.after ?? '—')}</td><td>${h(changeContext(r))}</td></tr>`,
    )
    .join('\n');
  return `<h2>What changed</h2>
<p>${h(c.summary)}</p>
<div class="scroll"><table><thead><tr><th>Kind</th><th>Name</th><th>Before</th><th>After</th><th>Scope, by, when</th></tr></thead><tbody>
${rows}
</tbody></table></div>`;
}

function contractHtml(c: ContractDiff): string {
  const item = (ch: ContractChange) =>
    `<tr><td>${ch.breaking ? '<span class="breaking">breaking</span>' : 'non-breaking'}</td><td>${h(ch.tool)}</td><td>${h(ch.path || '—')}</td><td>${h(ch.detail)}</td></tr>`;
  return `<h2>Contract (tools/list)</h2>
<p>${h(changeSummary(c))}; ${c.baseline.tools} → ${c.candidate.tools} tools${c.bump ? ` · version step: ${h(c.bump)}` : ''}</p>
${
  c.changes.length
    ? `<div class="scroll"><table><thead><tr><th>Change</th><th>Tool</th><th>Property</th><th>Detail</th></tr></thead><tbody>
${c.changes.map(item).join('\n')}
</tbody></table></div>`
    : ''
}`;
}
