import { describe, expect, it } from 'vitest';
import type { McpTool } from '#core/canary/contract-diff.ts';
import { diffTools } from '#core/canary/contract-diff.ts';
import type { MetricSeries } from '#core/canary/judge.ts';
import { judge } from '#core/canary/judge.ts';
import type { ReportMeta } from '#core/canary/report.ts';
import {
  buildReport,
  escapeHtml,
  escapeMarkdown,
  formatChange,
  formatEvidence,
  formatValue,
  renderHtml,
  renderMarkdown,
  verdictExitCode,
} from '#core/canary/report.ts';
import { canaryInput, HEALTHY } from './synthetic.ts';

const meta: ReportMeta = {
  id: '0197a1b2-0000-7000-8000-000000000001',
  server: 'docs-search',
  environment: 'production',
  baselineVersion: '1.4.2',
  canaryVersion: '1.5.0',
  window: {
    start: new Date('2026-07-01T10:00:00Z'),
    end: new Date('2026-07-01T11:00:00Z'),
    intervalSeconds: 60,
  },
  createdAt: '2026-07-01T11:00:05.000Z',
};

const tools: McpTool[] = [
  { name: 'search', inputSchema: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } },
  { name: 'fetch', inputSchema: { type: 'object', properties: { id: { type: 'string' } } } },
];

function regressionReport() {
  const result = judge(canaryInput({ ...HEALTHY, latencyMs: 180, errorRate: 0.03 }, HEALTHY));
  const contract = diffTools(tools, [tools[0]!], {
    baseline: meta.baselineVersion,
    candidate: meta.canaryVersion,
  });
  return buildReport(meta, result, contract);
}

const XSS = '<img src=x onerror=alert(1)>|*b*`c`[l](http://evil)';

function hostileReport() {
  const metrics: MetricSeries[] = [
    {
      config: {
        name: `lat<script>alert("m")</script>`,
        group: `g"><script>`,
        unit: 'ms',
        direction: 'increase',
      },
      operation: XSS,
      canary: Array.from({ length: 10 }, (_, i) => 200 + i),
      baseline: Array.from({ length: 10 }, (_, i) => 100 + i),
    },
  ];
  const result = judge({
    metrics,
    traffic: { canary: Array(10).fill(50), baseline: Array(10).fill(50) },
    options: { minRequestsPerWindow: 10 },
  });
  const contract = diffTools([{ name: XSS, description: 'x' }], [], {
    baseline: '1.0.0',
    candidate: '1.0.1',
  });
  return buildReport(
    { ...meta, server: `srv</h1><script>alert(1)</script>`, environment: "prod' onload='x", id: XSS },
    result,
    contract,
  );
}

describe('analysis report JSON', () => {
  it('carries ids, versions, window, rows, score, verdict, reasons, contract and thresholds', () => {
    const r = regressionReport();
    expect(r).toMatchObject({
      id: meta.id,
      server: 'docs-search',
      environment: 'production',
      baseline: { version: '1.4.2' },
      canary: { version: '1.5.0' },
      window: { start: '2026-07-01T10:00:00.000Z', end: '2026-07-01T11:00:00.000Z', intervalSeconds: 60 },
      createdAt: '2026-07-01T11:00:05.000Z',
      verdict: 'fail',
      thresholds: {
        pass: 95,
        marginal: 75,
        minRequestsPerInterval: 5,
        minRequestsPerWindow: 100,
        minIntervals: 5,
      },
      durationMs: null,
    });
    expect(r.rows).toHaveLength(7);
    const err = r.rows.find((x) => x.metric === 'error_rate')!;
    expect(err).toMatchObject({
      operation: null,
      group: 'errors',
      unit: 'ratio',
      classification: 'High',
      criticalFailure: true,
    });
    expect(err.baseline).toBeCloseTo(0.008865, 5);
    expect(err.canary).toBeCloseTo(0.02974, 5);
    expect(err.change.relative).toBeCloseTo(2.354, 3);
    expect(err.pValue).toBeLessThan(1e-6);
    expect(err.interval).toMatchObject({ confidence: 0.98 });
    expect(r.contract?.removedTools).toEqual(['fetch']);
    expect(r.warnings).toEqual([
      'breaking change under a non-major bump: 1.4.2 → 1.5.0 (tool fetch was removed); a breaking change needs 2.0.0',
    ]);
    // plain JSON: survives a round trip unchanged
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  });

  it('maps verdicts to CI exit codes: only a pass is 0', () => {
    expect([
      verdictExitCode('pass'),
      verdictExitCode('fail'),
      verdictExitCode('marginal'),
      verdictExitCode('inconclusive'),
    ]).toEqual([0, 1, 2, 3]);
  });
});

describe('value formatting', () => {
  it('formats values in their units', () => {
    expect(formatValue(0.02974, 'ratio')).toBe('2.974%');
    expect(formatValue(132.456, 'ms')).toBe('132.5 ms');
    expect(formatValue(1530, 'ms')).toBe('1.53 s');
    expect(formatValue(200e6, 'bytes')).toBe('190.7 MiB');
    expect(formatValue(3, 'count')).toBe('3');
    expect(formatValue(2, 'cores')).toBe('2 cores');
    expect(formatValue(null, 'ms')).toBe('—');
    expect(formatValue(-5, 'ms', true)).toBe('−5 ms');
  });
  it('formats changes: percentage points for ratios, "from 0" for a zero baseline', () => {
    expect(formatChange({ change: { absolute: 12, relative: 0.1 }, unit: 'ms', baseline: 120 })).toBe(
      '+12 ms (+10%)',
    );
    expect(
      formatChange({ change: { absolute: 0.0209, relative: 2.35 }, unit: 'ratio', baseline: 0.0089 }),
    ).toBe('+2.09 pp (+235%)');
    expect(formatChange({ change: { absolute: 0.02, relative: null }, unit: 'ratio', baseline: 0 })).toBe(
      '+2 pp (from 0)',
    );
    expect(formatChange({ change: { absolute: null, relative: null }, unit: 'ms', baseline: null })).toBe(
      '—',
    );
  });
  it('formats the evidence: p-value and interval of the shift', () => {
    expect(
      formatEvidence({ pValue: 0.00123, interval: { lower: 3, upper: 9.5, confidence: 0.98 }, unit: 'ms' }),
    ).toBe('p = 0.00123 · 98% [+3 ms, +9.5 ms]');
    expect(formatEvidence({ pValue: null, interval: null, unit: null })).toBe('—');
  });
});

describe('Markdown rendering', () => {
  it('has the verdict, score, reasons, a per-metric table and the contract', () => {
    const text = renderMarkdown(regressionReport());
    expect(text).toContain('### ❌ Canary analysis: **fail** — docs-search 1.5.0 vs 1.4.2 (production)');
    expect(text).toMatch(/\*\*Score 42\.9\*\* \(pass ≥ 95, marginal ≥ 75\) · recommended: roll back/);
    expect(text).toContain(
      '| Metric | Operation | Baseline | Canary | Change | Result | p-value · interval | Reason |',
    );
    expect(text).toMatch(
      /\| error\\_rate \| — \| 0\.8865% \| 2\.974% \| \+2\.087 pp \(\+235\.4%\) \| 🔺 High \(critical\) \| p = [\d.e-]+ · 98% \[\+1\.19 pp, \+2\.655 pp\] \|/,
    );
    expect(text).toMatch(/\| cpu \| — \| 30\.19% \| 30\.03% \| .* \| ✅ Pass \|/);
    expect(text).toContain(
      '> ⚠️ breaking change under a non-major bump: 1.4.2 → 1.5.0 (tool fetch was removed); a breaking change needs 2.0.0',
    );
    expect(text).toContain('- **breaking** · fetch: tool fetch was removed');
    expect(text).toContain('Groups: errors 0 · latency 0 · resources 100 · health 100');
    expect(text.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| ---')).length).toBe(1 + 7);
  });

  it('says inconclusive with the traffic reason', () => {
    const r = buildReport(meta, judge(canaryInput({ ...HEALTHY, requests: 1 }, HEALTHY)));
    const text = renderMarkdown(r);
    expect(text).toContain('### ⚪ Canary analysis: **inconclusive**');
    expect(text).toMatch(/- insufficient traffic \(\d+ requests, needs 100\)/);
    expect(text).toContain('recommended: hold: not enough evidence either way');
  });

  it('shows a metric without data as No data, left out of the score, and no score when nothing had data', () => {
    const noChecks = buildReport(meta, judge(canaryInput(HEALTHY, HEALTHY, { healthChecks: false })));
    expect(noChecks.rows.find((x) => x.metric === 'health_check_failures')).toMatchObject({
      classification: 'NoData',
      baseline: null,
      canary: null,
      reason: 'no canary and baseline data',
    });
    const text = renderMarkdown(noChecks);
    expect(text).toContain(
      '**Score 100** (pass ≥ 95, marginal ≥ 75) · recommended: promote · 1 of 7 metrics had no data and are not scored',
    );
    expect(text).toContain(
      '| health\\_check\\_failures | — | — | — | — | ⚪ No data | — | no canary and baseline data |',
    );
    expect(text).toContain('Groups: errors 100 · latency 100 · resources 100 · health —');

    const idle = buildReport(
      meta,
      judge(canaryInput({ ...HEALTHY, requests: 0 }, HEALTHY, { healthChecks: false, resources: false })),
    );
    expect(idle).toMatchObject({ verdict: 'inconclusive', score: null });
    const md = renderMarkdown(idle);
    expect(md).toContain(
      '**Score —** (pass ≥ 95, marginal ≥ 75) · recommended: hold: not enough evidence either way · no metric had data, so nothing is scored',
    );
    expect(md).toContain('- no metric had data to judge');
    expect(md).not.toContain('Score 100');
    const page = renderHtml(idle);
    expect(page).toContain('Score <b>—</b>');
    expect(page).toContain('no metric had data, so nothing is scored');
    expect(page).toContain('<span class="pill NoData">No data</span>');
    expect(page).not.toContain('Score <b>100</b>');
  });

  it('escapes markup in names so it renders inert', () => {
    const text = renderMarkdown(hostileReport());
    expect(text).not.toMatch(/<script|<img|<\/h1>/);
    expect(text).toContain('lat&lt;script&gt;alert("m")&lt;/script&gt;');
    expect(text).toContain('&lt;img src=x onerror=alert(1)&gt;\\|\\*b\\*\\`c\\`\\[l\\](http://evil)');
    // every table row still has exactly 8 cells: no | from a name splits a cell
    for (const line of text.split('\n').filter((l) => l.startsWith('| '))) {
      expect(line.replace(/\\\|/g, '').split('|').length - 2).toBe(8);
    }
    expect(escapeMarkdown('a\nb|c')).toBe('a b\\|c');
  });
});

describe('HTML rendering', () => {
  it('is a self-contained page: inline CSS, no scripts, no external assets', () => {
    const page = renderHtml(regressionReport());
    expect(page.startsWith('<!doctype html>')).toBe(true);
    expect(page).toContain('<style>');
    expect(page).toContain(`content="default-src 'none'; style-src 'unsafe-inline'; img-src data:"`);
    expect(page).not.toMatch(/<script|<link|<img|src=|href=|@import|url\(/i);
    expect(page).toContain('<div class="verdict">fail</div>');
    expect(page).toContain('<h1>docs-search 1.5.0 vs 1.4.2 · production</h1>');
    expect(page).toMatch(/<td>error_rate <span class="crit" title="critical metric">★<\/span><\/td>/);
    expect(page).toContain('<span class="pill High">High (critical)</span>');
    expect(page).toContain('<td class="num">2.974%</td>');
    expect(page).toContain('breaking change under a non-major bump: 1.4.2 → 1.5.0');
    expect(page).toContain('<td><span class="breaking">breaking</span></td><td>fetch</td>');
  });

  it('escapes everything that comes from users or servers', () => {
    const page = renderHtml(hostileReport());
    expect(page).not.toMatch(/<script|<img|onerror=alert\(1\)>|' onload='/);
    expect(page).toContain('srv&lt;/h1&gt;&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(page).toContain('lat&lt;script&gt;alert(&quot;m&quot;)&lt;/script&gt;');
    expect(page).toContain('prod&#39; onload=&#39;x');
    expect(page).toContain('&lt;img src=x onerror=alert(1)&gt;|*b*`c`[l](http://evil)');
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});
