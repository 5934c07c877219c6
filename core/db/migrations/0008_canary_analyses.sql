-- Canary analyses: a candidate version judged against a baseline in one environment over a window,
-- on demand or for a canary step with `analyze: true`. A running analysis is re-judged every
-- `every_ms` until `window_end` (its lifetime); its interim scores are kept, and the final report
-- (core/canary/report.ts AnalysisReport) is stored with the verdict.
CREATE TABLE canary_analyses (
  id uuid PRIMARY KEY,
  org_id uuid NOT NULL REFERENCES orgs (id),
  server_id uuid NOT NULL REFERENCES servers (id),
  environment text NOT NULL,
  baseline text NOT NULL,
  candidate text NOT NULL,
  -- how the baseline was chosen: explicit, stable-release (what ran at 100 % there), deployment, traffic
  baseline_source text NOT NULL,
  deployment_id uuid REFERENCES deployments (id),
  step integer,
  status text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
  verdict text CHECK (verdict IN ('pass', 'marginal', 'fail', 'inconclusive')),
  score double precision,
  -- { intervalSeconds, everyMs, metrics (overrides), options (thresholds, traffic minimums), operations }
  config jsonb NOT NULL,
  window_start timestamptz NOT NULL,
  window_end timestamptz NOT NULL,
  -- [{ at, score, verdict, requests }] per interim judgement
  interim jsonb NOT NULL DEFAULT '[]',
  report jsonb,
  -- what the verdict did to the rollout: promoted, awaiting-approval, held, rolled-back, rollback-recommended
  action text,
  error text,
  created_by text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  finished_at timestamptz,
  CHECK (window_end >= window_start)
);
CREATE INDEX canary_analyses_server_idx ON canary_analyses (server_id, created_at);
CREATE INDEX canary_analyses_deployment_idx ON canary_analyses (deployment_id, step);
-- One running analysis per canary step: the sweep that starts them may run in several processes.
CREATE UNIQUE INDEX canary_analyses_running_step_idx ON canary_analyses (deployment_id, step)
  WHERE status = 'running' AND deployment_id IS NOT NULL;
