/**
 * Canary analyses: a candidate version judged against a baseline in one environment, on demand
 * (`POST /servers/{server}/analyses`, for any two versions) or for a canary step with
 * `analyze: true` (started by the canary worker's sweep). An analysis over a past window is judged at
 * once; one with a lifetime runs as BullMQ jobs: judged every `every` on the window so far (interim
 * scores), stopped early with a fail when an interim score falls to marginal or below, and judged a
 * last time when its lifetime ends.
 *
 * The verdict drives the rollout through core/deploy (never HTTP): pass → the step is promoted
 * (or, with the policy `promotion: 'approval'`, held for a person to promote); marginal or
 * inconclusive → held (paused) for a person; fail → rolled back when the deployment's policy says
 * `rollbackOnFailure`, else held with "rollback recommended". Every verdict is published as a
 * `canary.verdict` event.
 */
import { appendAudit } from '../audit/log.ts';
import { changesForMessage, type MessageChanges } from '../changes/index.ts';
import type { Context, Principal } from '../auth/principal.ts';
import type { Db, Queryable } from '../db/client.ts';
import { parseDuration } from '../deploy/duration.ts';
import { findEnvironment } from '../deploy/environments.ts';
import type { DeployDeps, StepAnalysisPolicy } from '../deploy/records.ts';
import { applySystemEvent, reportAnalysisResult } from '../deploy/system-events.ts';
import { BadRequestError, NotFoundError } from '../errors.ts';
import {
  getAnalysis,
  loadView,
  SELECT,
  type AnalysisAction,
  type AnalysisConfig,
  type AnalysisRow,
  type AnalysisStatus,
  type AnalysisView,
  type InterimScore,
} from './analysis-view.ts';
import { diffTools, type ContractDiff } from './contract-diff.ts';
import { latestToolSnapshot } from '../health/tools.ts';
import { newId } from '../ids.ts';
import type { Logger } from '../logger.ts';
import type { EventPublisher } from '../notify/events.ts';
import { sessionsNotice } from '../notify/sessions.ts';
import { systemPrincipal } from '../orgs.ts';
import { sortDescending } from '../registry/semver-policy.ts';
import { findServer } from '../registry/servers.ts';
import { findVersion } from '../registry/versions.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { versionsWithTraffic } from '../warehouse/telemetry-queries.ts';
import {
  judge,
  resolveMetricConfig,
  resolveSettings,
  type JudgeOptions,
  type JudgeResult,
  type MetricConfig,
  type Verdict,
} from './judge.ts';
import { buildReport, type AnalysisReport } from './report.ts';
import { fmt } from './format.ts';
import { readSamples, toJudgeSeries, type MetricSelection } from './samples.ts';
import { SERVER_METRICS } from './metric-presets.ts';

/** Schedules the next evaluation of a running analysis. */
export interface CanaryScheduler {
  schedule(analysisId: string, at: number): Promise<void>;
}

export interface CanaryDeps {
  db: Db;
  warehouse: Warehouse;
  publisher: EventPublisher;
  scheduler: CanaryScheduler;
  /** Needed to act on rollouts (the worker); on-demand analyses without a deployment do without. */
  deploy?: DeployDeps | undefined;
  logger?: Logger | undefined;
}

export const DEFAULT_INTERVAL_SECONDS = 60;
/** How long a canary step's analysis watches, from the moment the step set the new weight. */
export const DEFAULT_STEP_LIFETIME_MS = 10 * 60_000;
/** Interim judgements of a running analysis: every 5 intervals (5 minutes by default). */
const DEFAULT_EVERY_INTERVALS = 5;

// ---------------------------------------------------------------------------------------------
// Input

export interface AnalysisInput {
  candidate: string;
  baseline?: string | undefined;
  environment: string;
  /** A past window: a duration ending at `to` (default now), or from/to (RFC 3339). */
  window?: string | undefined;
  from?: string | undefined;
  to?: string | undefined;
  /** Run from now for this long instead (interim scores every `every`). */
  lifetime?: string | undefined;
  every?: string | undefined;
  /** Sample interval (default 1m). */
  interval?: string | undefined;
  metrics?: Partial<MetricConfig>[] | undefined;
  operationMetrics?: Partial<MetricConfig>[] | false | undefined;
  thresholds?: { pass?: number | undefined; marginal?: number | undefined } | undefined;
  minRequestsPerInterval?: number | undefined;
  minRequestsPerWindow?: number | undefined;
  minIntervals?: number | undefined;
  groupWeights?: Record<string, number> | undefined;
}

/** Checks the judge settings and metric overrides as the judge will use them; 400 on anything wrong. */
export function checkConfig(
  input: Partial<AnalysisInput>,
  intervalSeconds: number,
  everyMs: number,
): AnalysisConfig {
  const options: JudgeOptions = {};
  if (input.thresholds?.pass !== undefined) options.passThreshold = input.thresholds.pass;
  if (input.thresholds?.marginal !== undefined) options.marginalThreshold = input.thresholds.marginal;
  if (input.minRequestsPerInterval !== undefined)
    options.minRequestsPerInterval = input.minRequestsPerInterval;
  if (input.minRequestsPerWindow !== undefined) options.minRequestsPerWindow = input.minRequestsPerWindow;
  if (input.minIntervals !== undefined) options.minIntervals = input.minIntervals;
  if (input.groupWeights !== undefined) options.groupWeights = input.groupWeights;
  resolveSettings(options);
  const selection: MetricSelection = { metrics: input.metrics, operationMetrics: input.operationMetrics };
  // Merging with empty samples validates names and every setting without touching the warehouse.
  const empty = {
    requests: [],
    errorRate: [],
    p50: [],
    p95: [],
    p99: [],
    cpu: [],
    memory: [],
    healthFailures: [],
  };
  const { metrics } = toJudgeSeries(
    {
      buckets: [],
      intervalSeconds,
      resolution: 'raw',
      canary: empty,
      baseline: empty,
      operations: [{ operation: 'x', canary: empty, baseline: empty }],
    },
    selection,
  );
  for (const m of metrics) resolveMetricConfig(m.config);
  return {
    intervalSeconds,
    everyMs,
    ...(input.metrics ? { metrics: input.metrics } : {}),
    ...(input.operationMetrics !== undefined ? { operationMetrics: input.operationMetrics } : {}),
    options,
  };
}

function intervalOf(text: string | undefined): number {
  if (text === undefined) return DEFAULT_INTERVAL_SECONDS;
  const ms = parseDuration('interval', text, { minMs: 1000, maxMs: 3_600_000 });
  if (ms % 1000 !== 0)
    throw new BadRequestError('interval must be whole seconds, e.g. 1m', 'invalid-interval');
  return ms / 1000;
}

// ---------------------------------------------------------------------------------------------
// Baseline

interface ReleaseAt {
  version: string;
}

/**
 * The stable version that ran in the environment in the window: the one released there at 100 %
 * now (if it is not the candidate), else the latest release there that overlapped the window, else
 * the newest registry-stable version that served traffic there in the window.
 */
export async function chooseBaseline(
  db: Queryable,
  warehouse: Warehouse,
  scope: {
    principal: Principal;
    serverId: string;
    server: string;
    environmentId: string;
    environment: string;
    candidate: string;
    from: number;
    to: number;
  },
): Promise<{ version: string; source: string }> {
  const [current] = await db.query<ReleaseAt>(
    `SELECT version FROM environment_releases WHERE server_id = $1 AND environment_id = $2 AND replaced_at IS NULL`,
    [scope.serverId, scope.environmentId],
  );
  if (current && current.version !== scope.candidate)
    return { version: current.version, source: 'stable-release' };
  const [during] = await db.query<ReleaseAt>(
    `SELECT version FROM environment_releases
     WHERE server_id = $1 AND environment_id = $2 AND version <> $3 AND released_at < $5
       AND (replaced_at IS NULL OR replaced_at > $4)
     ORDER BY released_at DESC, id DESC LIMIT 1`,
    [scope.serverId, scope.environmentId, scope.candidate, new Date(scope.from), new Date(scope.to)],
  );
  if (during) return { version: during.version, source: 'stable-release' };
  const stable = new Set(
    (
      await db.query<{ version: string }>(
        `SELECT version FROM versions WHERE server_id = $1 AND status IN ('stable', 'deprecated')`,
        [scope.serverId],
      )
    ).map((v) => v.version),
  );
  const traffic = await versionsWithTraffic(warehouse, {
    orgId: scope.principal.orgId,
    server: scope.server,
    environment: scope.environment,
    from: scope.from,
    to: scope.to,
  });
  const [newest] = sortDescending(
    traffic.filter((t) => stable.has(t.version) && t.version !== scope.candidate),
    (t) => t.version,
  );
  if (newest) return { version: newest.version, source: 'traffic' };
  throw new NotFoundError(
    `no stable version of ${scope.server} other than ${scope.candidate} ran in ${scope.environment} in this window to compare against; pass baseline`,
    'no-baseline',
  );
}

// ---------------------------------------------------------------------------------------------
// Creating

/** Validates, then judges a past window at once or starts a running analysis; bad input stores nothing. */
export async function createAnalysis(
  deps: CanaryDeps,
  ctx: Context,
  serverSlug: string,
  input: AnalysisInput,
  now = Date.now(),
): Promise<AnalysisView> {
  const { principal } = ctx;
  const server = await findServer(deps.db, principal, serverSlug);
  const env = await findEnvironment(deps.db, principal, input.environment);
  await findVersion(deps.db, server, input.candidate);
  const intervalSeconds = intervalOf(input.interval);
  let from: number;
  let to: number;
  let running = false;
  if (input.lifetime !== undefined) {
    if (input.window !== undefined || input.from !== undefined || input.to !== undefined)
      throw new BadRequestError(
        'give either lifetime (run from now) or a past window, not both',
        'invalid-window',
      );
    from = now;
    to =
      now + parseDuration('lifetime', input.lifetime, { minMs: intervalSeconds * 1000, maxMs: 86_400_000 });
    running = true;
  } else {
    to = input.to !== undefined ? Date.parse(input.to) : now;
    from =
      input.from !== undefined
        ? Date.parse(input.from)
        : to - parseDuration('window', input.window ?? '30m', { minMs: 60_000, maxMs: 30 * 86_400_000 });
    if (Number.isNaN(from) || Number.isNaN(to))
      throw new BadRequestError(
        'from and to must be RFC 3339 times (e.g. 2026-11-24T10:00:00Z)',
        'invalid-window',
      );
    if (from >= to) throw new BadRequestError('from must be before to', 'invalid-window');
    if (to > now + 60_000)
      throw new BadRequestError(
        'the window ends in the future; use lifetime to watch from now',
        'invalid-window',
      );
  }
  const everyMs =
    input.every !== undefined
      ? parseDuration('every', input.every, { minMs: 1000, maxMs: 86_400_000 })
      : intervalSeconds * 1000 * DEFAULT_EVERY_INTERVALS;
  const config = checkConfig(input, intervalSeconds, everyMs);

  let baseline: { version: string; source: string };
  if (input.baseline !== undefined) {
    await findVersion(deps.db, server, input.baseline);
    baseline = { version: input.baseline, source: 'explicit' };
  } else {
    baseline = await chooseBaseline(deps.db, deps.warehouse, {
      principal,
      serverId: server.id,
      server: server.slug,
      environmentId: env.id,
      environment: env.name,
      candidate: input.candidate,
      from,
      to,
    });
  }
  if (baseline.version === input.candidate) {
    throw new BadRequestError(
      `baseline and candidate are both ${input.candidate}; compare two different versions`,
      'same-version',
    );
  }

  const base = {
    id: newId(),
    orgId: principal.orgId,
    serverId: server.id,
    server: server.slug,
    environment: env.name,
    baseline: baseline.version,
    baselineSource: baseline.source,
    candidate: input.candidate,
    config,
    from,
    to,
    createdBy: principal.tokenName,
  };
  if (running) {
    await deps.db.transaction(async (tx) => {
      await insertRow(tx, { ...base, status: 'running' });
      await appendAudit(tx, ctx, auditEntry(base));
    });
    await deps.scheduler.schedule(base.id, Math.min(now + everyMs, to));
    return getAnalysis(deps.db, principal, serverSlug, base.id);
  }
  // Read and judge before anything is stored: a failure here leaves no row behind.
  const started = Date.now();
  const outcome = await judgeWindow(deps, { ...base, orgId: principal.orgId }, from, to);
  await deps.db.transaction(async (tx) => {
    await insertRow(tx, { ...base, status: 'running' });
    await appendAudit(tx, ctx, auditEntry(base));
    await complete(tx, base.id, outcome.result, buildAnalysisReport(base, outcome, started), 'none');
  });
  const view = await getAnalysis(deps.db, principal, serverSlug, base.id);
  await publishVerdict(deps, principal.orgId, view);
  return view;
}

interface Base {
  id: string;
  orgId: string;
  serverId: string;
  server: string;
  environment: string;
  baseline: string;
  baselineSource: string;
  candidate: string;
  config: AnalysisConfig;
  from: number;
  to: number;
  createdBy: string;
  deploymentId?: string | null;
  step?: number | null;
}

const auditEntry = (b: Base) => ({
  action: 'canary.analyze',
  target: {
    type: 'analysis',
    id: b.id,
    name: `${b.server} ${b.candidate} vs ${b.baseline} in ${b.environment}`,
  },
  after: {
    baseline: b.baseline,
    candidate: b.candidate,
    environment: b.environment,
    window: { from: new Date(b.from).toISOString(), to: new Date(b.to).toISOString() },
  },
});

async function insertRow(tx: Queryable, b: Base & { status: AnalysisStatus }): Promise<boolean> {
  const rows = await tx.query(
    `INSERT INTO canary_analyses (id, org_id, server_id, environment, baseline, candidate, baseline_source,
       deployment_id, step, status, config, window_start, window_end, created_by)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
     ON CONFLICT DO NOTHING RETURNING id`,
    [
      b.id,
      b.orgId,
      b.serverId,
      b.environment,
      b.baseline,
      b.candidate,
      b.baselineSource,
      b.deploymentId ?? null,
      b.step ?? null,
      b.status,
      JSON.stringify(b.config),
      new Date(b.from),
      new Date(b.to),
      b.createdBy,
    ],
  );
  return rows.length > 0;
}

// ---------------------------------------------------------------------------------------------
// Judging

interface Outcome {
  result: JudgeResult;
  contract: ContractDiff | null;
  /** What changed from the baseline to the canary (null: a version only telemetry knows). */
  changes: MessageChanges | null;
  from: number;
  to: number;
}

async function judgeWindow(
  deps: Pick<CanaryDeps, 'db' | 'warehouse' | 'logger'>,
  b: Pick<Base, 'orgId' | 'server' | 'environment' | 'baseline' | 'candidate' | 'config'>,
  from: number,
  to: number,
): Promise<Outcome> {
  const samples = await readSamples(deps.warehouse, {
    orgId: b.orgId,
    server: b.server,
    environment: b.environment,
    baseline: b.baseline,
    candidate: b.candidate,
    from,
    to,
    intervalSeconds: b.config.intervalSeconds,
  });
  const { metrics, traffic } = toJudgeSeries(samples, b.config);
  const result = judge({ metrics, traffic, options: b.config.options });
  const changes = await changesForMessage(deps.db, b.orgId, b, to);
  return { result, contract: await contractOf(deps, b), changes, from, to };
}

/** The contract diff from the newest `tools/list` each version's MCP health checks saw, when both have one. */
async function contractOf(
  deps: Pick<CanaryDeps, 'db' | 'logger'>,
  b: Pick<Base, 'orgId' | 'server' | 'environment' | 'baseline' | 'candidate'>,
): Promise<ContractDiff | null> {
  const snapshot = async (version: string) =>
    (await latestToolSnapshot(deps.db, {
      orgId: b.orgId,
      server: b.server,
      version,
      environment: b.environment,
    })) ?? (await latestToolSnapshot(deps.db, { orgId: b.orgId, server: b.server, version }));
  const [base, cand] = await Promise.all([snapshot(b.baseline), snapshot(b.candidate)]);
  if (!base || !cand) return null;
  const tools = (s: typeof base) => s.tools as unknown as Parameters<typeof diffTools>[0];
  try {
    return diffTools(tools(base), tools(cand), { baseline: b.baseline, candidate: b.candidate });
  } catch (error) {
    // Versions that are not semver: diff the tools without the bump check.
    try {
      return diffTools(tools(base), tools(cand));
    } catch {
      deps.logger?.warn({ err: error }, 'could not diff the tools lists of a canary analysis');
      return null;
    }
  }
}

function buildAnalysisReport(b: Base, outcome: Outcome, started: number): AnalysisReport {
  const report = buildReport(
    {
      id: b.id,
      server: b.server,
      environment: b.environment,
      baselineVersion: b.baseline,
      canaryVersion: b.candidate,
      window: {
        start: new Date(outcome.from),
        end: new Date(outcome.to),
        intervalSeconds: b.config.intervalSeconds,
      },
      durationMs: Math.round(Date.now() - started),
    },
    outcome.result,
    outcome.contract,
  );
  return { ...report, changes: outcome.changes };
}

/** Stores the final verdict; false when another evaluation finished the analysis first. */
async function complete(
  tx: Queryable,
  id: string,
  result: JudgeResult,
  report: AnalysisReport,
  action: AnalysisAction | null,
): Promise<boolean> {
  const rows = await tx.query(
    `UPDATE canary_analyses SET status = 'completed', verdict = $2, score = $3, report = $4, action = $5,
       window_end = LEAST(window_end, $6), finished_at = now()
     WHERE id = $1 AND status = 'running' RETURNING id`,
    [id, result.verdict, result.score, JSON.stringify(report), action, new Date(report.window.end)],
  );
  return rows.length > 0;
}

const rowBase = (row: AnalysisRow): Base => ({
  id: row.id,
  orgId: row.org_id,
  serverId: row.server_id,
  server: row.server,
  environment: row.environment,
  baseline: row.baseline,
  baselineSource: row.baseline_source,
  candidate: row.candidate,
  config: row.config,
  from: row.window_start.getTime(),
  to: row.window_end.getTime(),
  createdBy: row.created_by,
  deploymentId: row.deployment_id,
  step: row.step,
});

/**
 * One evaluation of a running analysis (a job): judges the window so far; at the end of its
 * lifetime, or when the interim score falls to marginal or below, finishes it and acts on the
 * rollout; otherwise records the interim score and schedules the next evaluation.
 */
export async function evaluateAnalysis(
  deps: CanaryDeps,
  id: string,
  now = Date.now(),
): Promise<{ status: AnalysisStatus; verdict: Verdict | null } | undefined> {
  const [row] = await deps.db.query<AnalysisRow>(`${SELECT} WHERE a.id = $1`, [id]);
  if (!row) return undefined;
  if (row.status !== 'running') return { status: row.status, verdict: row.verdict };
  const b = rowBase(row);
  const started = Date.now();
  const end = Math.min(now, b.to);
  const final = now >= b.to;
  if (!final && end - b.from < b.config.intervalSeconds * 1000) {
    await deps.scheduler.schedule(id, Math.min(now + b.config.everyMs, b.to));
    return { status: 'running', verdict: null };
  }
  const outcome = await judgeWindow(deps, b, b.from, end);
  const { result } = outcome;
  const interim: InterimScore = {
    at: new Date(now).toISOString(),
    score: result.score,
    verdict: result.verdict,
    canaryRequests: result.traffic.canaryRequests,
  };
  const early = !final && (result.verdict === 'marginal' || result.verdict === 'fail');
  if (!final && !early) {
    await deps.db.query(
      `UPDATE canary_analyses SET interim = interim || $2::jsonb WHERE id = $1 AND status = 'running'`,
      [id, JSON.stringify([interim])],
    );
    await deps.scheduler.schedule(id, Math.min(now + b.config.everyMs, b.to));
    return { status: 'running', verdict: null };
  }
  if (early) {
    const minutes = fmt(Math.round((end - b.from) / 6000) / 10);
    result.reasons.unshift(
      `stopped early after ${minutes} min: the interim score ${result.score === null ? '—' : fmt(Math.round(result.score * 10) / 10)} is ${result.verdict === 'fail' ? 'below the marginal threshold' : 'marginal'}`,
    );
    result.verdict = 'fail';
  }
  const report = buildAnalysisReport(b, outcome, started);
  const won = await deps.db.transaction(async (tx) => {
    await tx.query(`UPDATE canary_analyses SET interim = interim || $2::jsonb WHERE id = $1`, [
      id,
      JSON.stringify([interim]),
    ]);
    return complete(tx, id, result, report, null);
  });
  if (!won) return { status: 'completed', verdict: null };
  const action = await actOnRollout(deps, row, result.verdict, result.reasons);
  await deps.db.query('UPDATE canary_analyses SET action = $2 WHERE id = $1', [id, action]);
  const view = await loadView(deps.db, id);
  await publishVerdict(deps, row.org_id, view);
  return { status: 'completed', verdict: result.verdict };
}

// ---------------------------------------------------------------------------------------------
// Acting on the rollout

interface PolicyLike {
  rollbackOnFailure?: boolean;
  /** 'approval': a passing analysis waits for a person to promote. */
  promotion?: 'auto' | 'approval';
}

async function actOnRollout(
  deps: CanaryDeps,
  row: AnalysisRow,
  verdict: Verdict,
  reasons: string[],
): Promise<AnalysisAction> {
  if (!row.deployment_id || row.step === null) return 'none';
  if (!deps.deploy) throw new Error('acting on a rollout needs the deployment service');
  const deploy = deps.deploy;
  const deploymentId = row.deployment_id;
  const step = row.step;
  const [d] = await deps.db.query<{ policy: PolicyLike }>('SELECT policy FROM deployments WHERE id = $1', [
    deploymentId,
  ]);
  const policy = d?.policy ?? {};
  const first = reasons[0] ? `: ${reasons[0]}` : '';
  const summary = `canary analysis ${row.id} ${verdict}${first}`;
  const hold = async (why: string) => {
    await applySystemEvent(
      deploy,
      deploymentId,
      { type: 'pause' },
      { action: 'deployment.pause', reason: why, detail: { analysis: row.id, verdict } },
      async (_tx, r) =>
        r.status === 'progressing' && r.awaiting === 'analysis' && r.current_step === step
          ? { type: 'pause' }
          : null,
    );
  };
  if (verdict === 'pass') {
    if (policy.promotion === 'approval') {
      await hold(`${summary}; waiting for approval to promote`);
      return 'awaiting-approval';
    }
    await reportAnalysisResult(deploy, deploymentId, step, { passed: true, detail: summary });
    return 'promoted';
  }
  if (verdict === 'fail') {
    if (policy.rollbackOnFailure) {
      await reportAnalysisResult(deploy, deploymentId, step, { passed: false, detail: summary });
      return 'rolled-back';
    }
    await hold(`${summary}; rollback recommended`);
    return 'rollback-recommended';
  }
  await hold(`${summary}; held for a person to promote or roll back`);
  return 'held';
}

async function publishVerdict(
  deps: Pick<CanaryDeps, 'publisher' | 'logger' | 'warehouse'>,
  orgId: string,
  view: AnalysisView,
) {
  // Both versions' crash-free sessions over the window judged; a warehouse failure leaves them out
  // rather than the verdict unannounced.
  const sessions = await sessionsNotice(deps.warehouse, {
    orgId,
    server: view.server,
    environment: view.environment,
    version: view.candidate,
    baseline: view.baseline,
    from: Date.parse(view.window.start),
    to: Date.parse(view.window.end),
  }).catch((error: unknown) => {
    deps.logger?.warn({ err: error, analysis: view.id }, 'could not read the sessions of a canary verdict');
    return null;
  });
  const score = view.score === null ? '' : ` (score ${fmt(Math.round(view.score * 10) / 10)})`;
  const action =
    view.action === 'rolled-back'
      ? '; rolled back'
      : view.action === 'rollback-recommended'
        ? '; rollback recommended'
        : view.action === 'promoted'
          ? '; promoted'
          : view.action === 'held' || view.action === 'awaiting-approval'
            ? '; rollout held'
            : '';
  try {
    await deps.publisher.publish({
      type: 'canary.verdict',
      orgId,
      server: view.server,
      environment: view.environment,
      version: view.candidate,
      labels: { verdict: view.verdict ?? 'none', baseline: view.baseline },
      summary: `${view.server} ${view.candidate} vs ${view.baseline} in ${view.environment}: ${view.verdict}${score}${action}${view.changes?.summary ? `. ${view.changes.summary}` : ''}`,
      data: {
        analysis: {
          id: view.id,
          verdict: view.verdict,
          score: view.score,
          reasons: view.reasons,
          warnings: view.warnings,
          baseline: view.baseline,
          candidate: view.candidate,
          environment: view.environment,
          deploymentId: view.deploymentId,
          step: view.step,
          action: view.action,
          reportPath: `/api/v1/servers/${encodeURIComponent(view.server)}/analyses/${view.id}?format=markdown`,
        },
        changes: view.changes ? { ...view.changes, rows: view.changes.rows.slice(0, 10) } : null,
        sessions,
      },
    });
  } catch (error) {
    deps.logger?.error({ err: error, analysis: view.id }, 'could not publish a canary verdict');
  }
}

// ---------------------------------------------------------------------------------------------
// Canary steps

export interface StepAnalysisOptions {
  /** How long a step's analysis watches from when the step was entered. @defaultValue 10 minutes */
  lifetimeMs?: number | undefined;
  /** Judge data from this long before the analysis starts instead of from the step's start. */
  lookbackMs?: number | undefined;
  intervalSeconds?: number | undefined;
  everyMs?: number | undefined;
}

/**
 * Starts an analysis for every rollout waiting for one (progressing, awaiting `analysis`) that has
 * none running and none finished since the rollout last changed (a person resuming a held rollout
 * asks for a new analysis). Returns the ids started.
 */
export async function startStepAnalyses(
  deps: CanaryDeps,
  options: StepAnalysisOptions = {},
  now = Date.now(),
): Promise<string[]> {
  const due = await deps.db.query<{
    id: string;
    org_id: string;
    org_slug: string;
    server_id: string;
    server: string;
    environment_id: string;
    environment: string;
    version: string;
    previous_version: string | null;
    current_step: number;
    entered_at: Date | null;
    policy: { analysis?: StepAnalysisPolicy };
  }>(
    `SELECT d.id, d.org_id, d.policy, o.slug AS org_slug, d.server_id, s.slug AS server, d.current_environment_id AS environment_id,
       e.name AS environment, d.version, d.previous_version, d.current_step,
       (SELECT min(ev.at) FROM deployment_events ev WHERE ev.deployment_id = d.id AND ev.step = d.current_step) AS entered_at
     FROM deployments d JOIN servers s ON s.id = d.server_id JOIN orgs o ON o.id = d.org_id
       JOIN environments e ON e.id = d.current_environment_id
     WHERE d.status = 'progressing' AND d.awaiting = 'analysis'
       AND NOT EXISTS (SELECT 1 FROM canary_analyses a WHERE a.deployment_id = d.id AND a.step = d.current_step
         AND (a.status = 'running' OR a.finished_at >= d.updated_at))`,
  );
  const started: string[] = [];
  for (const d of due) {
    // The deployment's own analysis policy wins over the worker's defaults.
    const intervalSeconds =
      d.policy.analysis?.intervalSeconds ?? options.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS;
    const everyMs =
      d.policy.analysis?.intervalSeconds !== undefined || options.everyMs === undefined
        ? intervalSeconds * 1000 * DEFAULT_EVERY_INTERVALS
        : options.everyMs;
    const lifetimeMs = d.policy.analysis?.lifetimeMs ?? options.lifetimeMs ?? DEFAULT_STEP_LIFETIME_MS;
    const principal = systemPrincipal({ id: d.org_id, slug: d.org_slug });
    const from =
      options.lookbackMs !== undefined ? now - options.lookbackMs : (d.entered_at?.getTime() ?? now);
    const to = Math.max(from + lifetimeMs, now);
    const config: AnalysisConfig = { intervalSeconds, everyMs, options: {} };
    let baseline: { version: string; source: string } | undefined;
    let error: string | null = null;
    if (d.previous_version && d.previous_version !== d.version)
      baseline = { version: d.previous_version, source: 'deployment' };
    else {
      try {
        baseline = await chooseBaseline(deps.db, deps.warehouse, {
          principal,
          serverId: d.server_id,
          server: d.server,
          environmentId: d.environment_id,
          environment: d.environment,
          candidate: d.version,
          from,
          to,
        });
      } catch (e) {
        error = e instanceof Error ? e.message : String(e);
      }
    }
    const b: Base = {
      id: newId(),
      orgId: d.org_id,
      serverId: d.server_id,
      server: d.server,
      environment: d.environment,
      baseline: baseline?.version ?? '',
      baselineSource: baseline?.source ?? 'none',
      candidate: d.version,
      config,
      from,
      to,
      createdBy: 'pylee',
      deploymentId: d.id,
      step: d.current_step,
    };
    const inserted = await deps.db.transaction(async (tx) => {
      if (!(await insertRow(tx, { ...b, status: error ? 'failed' : 'running' }))) return false;
      await appendAudit(tx, { principal }, auditEntry(b));
      if (error)
        await tx.query(
          `UPDATE canary_analyses SET error = $2, action = 'held', finished_at = now() WHERE id = $1`,
          [b.id, error],
        );
      return true;
    });
    if (!inserted) continue;
    started.push(b.id);
    if (error) {
      // Nothing to compare with: a person decides.
      if (deps.deploy) {
        await applySystemEvent(
          deps.deploy,
          d.id,
          { type: 'pause' },
          { action: 'deployment.pause', reason: `canary analysis could not start: ${error}` },
          async (_tx, r) =>
            r.status === 'progressing' && r.awaiting === 'analysis' && r.current_step === d.current_step
              ? { type: 'pause' }
              : null,
        );
      }
      continue;
    }
    await deps.scheduler.schedule(b.id, now);
  }
  return started;
}

/** Running analyses whose next evaluation is overdue (a lost job): their ids. */
export async function overdueAnalyses(db: Queryable, now = Date.now()): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT id FROM canary_analyses WHERE status = 'running' AND window_end < $1`,
    [new Date(now - 60_000)],
  );
  return rows.map((r) => r.id);
}

/** The server metric presets, for documentation and the CLI. */
export const METRIC_NAMES = SERVER_METRICS.map((m) => m.name);
