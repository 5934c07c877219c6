/**
 * What a canary analysis looks like to readers: its stored row, the view the API and the CLI show,
 * and the queries that read analyses.
 */
import type { Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { NotFoundError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import type { ContractDiff } from './contract-diff.ts';
import type { JudgeOptions, MetricConfig, Verdict } from './judge.ts';
import type { AnalysisReport, ReportChanges } from './report.ts';

export type AnalysisStatus = 'running' | 'completed' | 'failed';
export type AnalysisAction =
  'promoted' | 'awaiting-approval' | 'held' | 'rolled-back' | 'rollback-recommended' | 'none';

export interface AnalysisConfig {
  intervalSeconds: number;
  everyMs: number;
  metrics?: Partial<MetricConfig>[] | undefined;
  operationMetrics?: Partial<MetricConfig>[] | false | undefined;
  options: JudgeOptions;
}

export interface InterimScore {
  at: string;
  score: number | null;
  verdict: Verdict;
  canaryRequests: number;
}

export interface AnalysisRow {
  id: string;
  org_id: string;
  server_id: string;
  server: string;
  environment: string;
  baseline: string;
  candidate: string;
  baseline_source: string;
  deployment_id: string | null;
  step: number | null;
  status: AnalysisStatus;
  verdict: Verdict | null;
  score: number | null;
  config: AnalysisConfig;
  window_start: Date;
  window_end: Date;
  interim: InterimScore[];
  report: AnalysisReport | null;
  action: AnalysisAction | null;
  error: string | null;
  created_by: string;
  created_at: Date;
  finished_at: Date | null;
}

export interface AnalysisView {
  id: string;
  server: string;
  environment: string;
  baseline: string;
  candidate: string;
  /** explicit, deployment (the version the rollout replaces), stable-release or traffic */
  baselineSource: string;
  deploymentId: string | null;
  step: number | null;
  status: AnalysisStatus;
  verdict: Verdict | null;
  score: number | null;
  reasons: string[];
  warnings: string[];
  /** What the verdict did to the rollout. */
  action: AnalysisAction | null;
  error: string | null;
  window: { start: string; end: string; intervalSeconds: number };
  interim: InterimScore[];
  /** Per-metric rows (the report's), `change` as a relative change. */
  metrics: Record<string, unknown>[];
  traffic: { canaryRequests: number; baselineRequests: number; intervals: number } | null;
  contract: ContractDiff | null;
  /** What changed from the baseline to the canary, as the verdict's message says it. */
  changes: ReportChanges | null;
  createdBy: string;
  createdAt: string;
  finishedAt: string | null;
}

export const SELECT = `SELECT a.*, s.slug AS server FROM canary_analyses a JOIN servers s ON s.id = a.server_id`;

export function toView(row: AnalysisRow): AnalysisView {
  const report = row.report;
  return {
    id: row.id,
    server: row.server,
    environment: row.environment,
    baseline: row.baseline,
    candidate: row.candidate,
    baselineSource: row.baseline_source,
    deploymentId: row.deployment_id,
    step: row.step,
    status: row.status,
    verdict: row.verdict,
    score: row.score,
    reasons: report?.reasons ?? (row.error ? [row.error] : []),
    warnings: report?.warnings ?? [],
    action: row.action,
    error: row.error,
    window: {
      start: row.window_start.toISOString(),
      end: row.window_end.toISOString(),
      intervalSeconds: row.config.intervalSeconds,
    },
    interim: row.interim,
    metrics: (report?.rows ?? []).map((r) => ({
      ...r,
      name: r.metric,
      change: r.change.relative,
      absoluteChange: r.change.absolute,
    })),
    traffic: report?.traffic ?? null,
    contract: report?.contract ?? null,
    changes: report?.changes ?? null,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    finishedAt: row.finished_at?.toISOString() ?? null,
  };
}

// ---------------------------------------------------------------------------------------------
// Reading

export async function loadView(db: Queryable, id: string): Promise<AnalysisView> {
  const [row] = await db.query<AnalysisRow>(`${SELECT} WHERE a.id = $1`, [id]);
  return toView(row as AnalysisRow);
}

export async function getAnalysisRow(db: Queryable, principal: Principal, serverSlug: string, id: string) {
  const server = await findServer(db, principal, serverSlug);
  const [row] = /^[0-9a-f-]{36}$/i.test(id)
    ? await db.query<AnalysisRow>(`${SELECT} WHERE a.id = $1 AND a.server_id = $2`, [id, server.id])
    : [];
  if (!row)
    throw new NotFoundError(`analysis ${id} of server ${serverSlug} was not found`, 'analysis-not-found');
  return row;
}

export async function getAnalysis(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  id: string,
): Promise<AnalysisView> {
  return toView(await getAnalysisRow(db, principal, serverSlug, id));
}

/** The stored report, for the Markdown and HTML renderings; a running analysis has none yet. */
export async function getReport(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  id: string,
): Promise<AnalysisReport> {
  const row = await getAnalysisRow(db, principal, serverSlug, id);
  if (!row.report) {
    throw new NotFoundError(
      row.status === 'running'
        ? `analysis ${id} is still running until ${row.window_end.toISOString()}; its report is written when it ends`
        : `analysis ${id} has no report: ${row.error ?? 'it did not run'}`,
      'report-not-ready',
    );
  }
  return row.report;
}

export interface AnalysisFilter {
  environment?: string | undefined;
  candidate?: string | undefined;
  baseline?: string | undefined;
  deployment?: string | undefined;
  limit?: number | undefined;
}

export async function listAnalyses(
  db: Queryable,
  principal: Principal,
  serverSlug: string,
  filter: AnalysisFilter = {},
): Promise<AnalysisView[]> {
  const server = await findServer(db, principal, serverSlug);
  const where = ['a.server_id = $1'];
  const params: unknown[] = [server.id];
  const add = (column: string, value: string | undefined) => {
    if (value === undefined) return;
    params.push(value);
    where.push(`a.${column} = $${params.length}`);
  };
  add('environment', filter.environment);
  add('candidate', filter.candidate);
  add('baseline', filter.baseline);
  if (filter.deployment !== undefined) {
    if (!/^[0-9a-f-]{36}$/i.test(filter.deployment)) return [];
    add('deployment_id', filter.deployment);
  }
  const limit = Math.min(Math.max(filter.limit ?? 50, 1), 500);
  const rows = await db.query<AnalysisRow>(
    `${SELECT} WHERE ${where.join(' AND ')} ORDER BY a.created_at DESC, a.id DESC LIMIT ${limit}`,
    params,
  );
  return rows.map(toView);
}
