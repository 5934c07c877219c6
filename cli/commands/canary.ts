import { setTimeout as sleep } from 'node:timers/promises';
import type { AnalysisView } from '#core/canary/analysis-view.ts';
import { verdictExitCode } from '#core/canary/report.ts';
import { AppError } from '#core/errors.ts';
import {
  api,
  query,
  segment,
  shortTime,
  table,
  type Command,
  type CommandContext,
  type FlagSpec,
} from '../client.ts';

/**
 * `pylee canary run|report|list`: canary analyses from CI. `run` and `report` exit with the
 * verdict, so a pipeline can gate on them: 0 pass, 1 fail, 2 marginal, 3 inconclusive.
 */

const FORMATS = ['markdown', 'html', 'json'] as const;
type Format = (typeof FORMATS)[number];

const FORMAT: Record<string, FlagSpec> = {
  format: {
    type: 'string',
    value: 'markdown|html|json',
    description: 'the report: Markdown (PR comments, Slack; default), a self-contained HTML page, or JSON',
  },
};

const analysesPath = (server: string) => `/servers/${segment(server)}/analyses`;
const POLL_MS = 2000;

function formatOf(ctx: CommandContext): Format {
  if (ctx.json) return 'json';
  const f = (ctx.flags.format as string | undefined) ?? 'markdown';
  if (!(FORMATS as readonly string[]).includes(f)) ctx.usage(`--format ${f}: use markdown, html or json`);
  return f as Format;
}

/** The report as text (Markdown or HTML) from `GET …/analyses/{id}?format=`. */
async function reportText(ctx: CommandContext, server: string, id: string, format: 'markdown' | 'html') {
  const { url, token } = ctx.client;
  if (!token) return api<never>(ctx.client, 'GET', '/'); // the client's own missing-token error
  let response: Response;
  try {
    response = await fetch(`${url}/api/v1${analysesPath(server)}/${segment(id)}${query({ format })}`, {
      headers: { authorization: `Bearer ${token}` },
    });
  } catch (error) {
    throw new AppError(
      503,
      'unreachable',
      'Unreachable',
      `cannot reach Pylee at ${url}: ${(error as Error).cause ?? error}`,
    );
  }
  const text = await response.text();
  if (!response.ok) {
    let problem: { code?: string; title?: string; detail?: string } = {};
    try {
      problem = JSON.parse(text) as typeof problem;
    } catch {
      // not problem+json
    }
    throw new AppError(
      response.status,
      problem.code ?? 'http-error',
      problem.title ?? response.statusText,
      problem.detail ?? `HTTP ${response.status}`,
    );
  }
  return text;
}

/** Prints the analysis in the chosen format and returns the verdict's exit code. */
async function show(
  ctx: CommandContext,
  server: string,
  analysis: AnalysisView,
  format: Format,
): Promise<number> {
  if (analysis.status !== 'completed' || analysis.verdict === null) {
    const why = analysis.error ?? `the analysis is ${analysis.status}`;
    if (format === 'json') ctx.print(analysis, '');
    else ctx.warn(`analysis ${analysis.id}: ${why}`);
    return verdictExitCode('inconclusive');
  }
  if (format === 'json') {
    const full = await api<Record<string, unknown>>(
      ctx.client,
      'GET',
      `${analysesPath(server)}/${segment(analysis.id)}`,
    );
    ctx.print(full, JSON.stringify(full, null, 2));
  } else {
    const text = await reportText(ctx, server, analysis.id, format);
    ctx.print(text, text.trimEnd());
  }
  return verdictExitCode(analysis.verdict);
}

function numberFlag(ctx: CommandContext, name: string): number | undefined {
  const v = ctx.flags[name] as string | undefined;
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) ctx.usage(`--${name} ${v} is not a number`);
  return n;
}

export const canaryCommands: Command[] = [
  {
    name: 'canary run',
    args: ['<server>'],
    summary:
      'judge a candidate against its baseline and print the report; exit 0 pass, 1 fail, 2 marginal, 3 inconclusive (a CI gate)',
    flags: {
      candidate: { type: 'string', value: 'V', required: true, description: 'the version under test' },
      baseline: {
        type: 'string',
        value: 'V',
        description: 'the version to compare with (default: the stable version in the environment)',
      },
      env: { type: 'string', value: 'E', required: true, description: 'the environment both run in' },
      window: { type: 'string', value: 'D', description: 'a past window ending now (default 30m)' },
      from: { type: 'string', value: 'T', description: 'window start (RFC 3339)' },
      to: { type: 'string', value: 'T', description: 'window end (RFC 3339)' },
      lifetime: {
        type: 'string',
        value: 'D',
        description: 'watch from now for D instead (waits; stops early on a failing interim score)',
      },
      interval: { type: 'string', value: 'D', description: 'sample interval (default 1m)' },
      pass: { type: 'string', value: 'N', description: 'score needed to pass (default 95)' },
      marginal: { type: 'string', value: 'N', description: 'score below which it fails (default 75)' },
      ...FORMAT,
    },
    async run(ctx) {
      const server = ctx.positionals[0] as string;
      const format = formatOf(ctx);
      const f = (name: string) => ctx.flags[name] as string | undefined;
      const pass = numberFlag(ctx, 'pass');
      const marginal = numberFlag(ctx, 'marginal');
      const body = {
        candidate: f('candidate'),
        baseline: f('baseline'),
        environment: f('env'),
        window: f('window'),
        from: f('from'),
        to: f('to'),
        lifetime: f('lifetime'),
        interval: f('interval'),
        ...(pass !== undefined || marginal !== undefined ? { thresholds: { pass, marginal } } : {}),
      };
      let analysis = await api<AnalysisView>(ctx.client, 'POST', analysesPath(server), body);
      if (analysis.status === 'running') {
        ctx.warn(`analysis ${analysis.id} runs until ${analysis.window.end}; waiting for its verdict`);
        const deadline = Date.parse(analysis.window.end) + 5 * 60_000;
        while (analysis.status === 'running' && Date.now() < deadline) {
          await sleep(POLL_MS);
          analysis = await api<AnalysisView>(
            ctx.client,
            'GET',
            `${analysesPath(server)}/${segment(analysis.id)}`,
          );
        }
      }
      return show(ctx, server, analysis, format);
    },
  },
  {
    name: 'canary report',
    args: ['<server>', '<id>'],
    summary: "print an analysis's report; exit 0 pass, 1 fail, 2 marginal, 3 inconclusive or not finished",
    flags: FORMAT,
    async run(ctx) {
      const [server, id] = ctx.positionals as [string, string];
      const analysis = await api<AnalysisView>(ctx.client, 'GET', `${analysesPath(server)}/${segment(id)}`);
      return show(ctx, server, analysis, formatOf(ctx));
    },
  },
  {
    name: 'canary list',
    args: ['<server>'],
    summary: 'list canary analyses, newest first',
    flags: {
      env: { type: 'string', value: 'E', description: 'only this environment' },
      candidate: { type: 'string', value: 'V', description: 'only this candidate version' },
      deployment: { type: 'string', value: 'ID', description: "only this deployment's step analyses" },
    },
    async run(ctx) {
      const server = ctx.positionals[0] as string;
      const f = (name: string) => ctx.flags[name] as string | undefined;
      const { analyses } = await api<{ analyses: AnalysisView[] }>(
        ctx.client,
        'GET',
        `${analysesPath(server)}${query({ environment: f('env'), candidate: f('candidate'), deployment: f('deployment') })}`,
      );
      ctx.print(
        analyses,
        analyses.length === 0
          ? 'no analyses'
          : table(
              ['ID', 'CANDIDATE', 'BASELINE', 'ENV', 'STATUS', 'VERDICT', 'SCORE', 'ACTION', 'CREATED'],
              analyses.map((a) => [
                a.id,
                a.candidate,
                a.baseline,
                a.environment,
                a.status,
                a.verdict ?? '-',
                a.score === null ? '-' : String(Math.round(a.score)),
                a.action ?? '-',
                shortTime(a.createdAt),
              ]),
            ),
      );
    },
  },
];
