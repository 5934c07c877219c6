-- Alerts that know about rollouts: what a rule does with a rollout candidate's alerts, how soon
-- after a rollout step or configuration change an alert says it began after one, and on each
-- instance the rollout it belongs to, what it began after, and a hold while a canary analysis runs.
ALTER TABLE alert_rules
  ADD COLUMN during_rollout text NOT NULL DEFAULT 'notify' CHECK (during_rollout IN ('notify', 'hold', 'inhibit')),
  ADD COLUMN correlation_window_ms integer NOT NULL DEFAULT 1800000 CHECK (correlation_window_ms >= 0);

ALTER TABLE alert_instances
  -- { deploymentId, environment, version, step, steps, weight, status, startedAt, startedBy } while in a rollout
  ADD COLUMN rollout jsonb,
  -- [{ kind, text, at, ... }]: rollout steps and configuration changes shortly before it began
  ADD COLUMN correlation jsonb,
  -- the rollout whose canary analysis (hold) or whole course (inhibit) keeps its notifications back
  ADD COLUMN held_by uuid,
  ADD COLUMN held_since timestamptz;
