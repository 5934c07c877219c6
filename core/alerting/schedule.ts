import type { Queue } from 'bullmq';
import type { Queryable } from '../db/client.ts';
import { enabledRules } from './rules.ts';

/** Job name of a rule evaluation on the `alerts` queue. */
export const EVALUATE_JOB = 'alert-evaluate';

export interface EvaluateJobData {
  ruleId: string;
  orgId: string;
}

/** One BullMQ job scheduler per enabled rule; its id names the rule. */
export const schedulerId = (ruleId: string) => `alert-rule:${ruleId}`;
const ruleOf = (id: string) => (id.startsWith('alert-rule:') ? id.slice('alert-rule:'.length) : undefined);

const JOB_OPTS = { removeOnComplete: true, removeOnFail: 100 };

/** Makes the rule's scheduler match it: upserted at its interval while enabled, removed otherwise. */
export async function syncRuleSchedule(
  queue: Queue,
  rule: { id: string; orgId: string; intervalMs: number; enabled: boolean } | { id: string; deleted: true },
): Promise<void> {
  if ('deleted' in rule || !rule.enabled) {
    await queue.removeJobScheduler(schedulerId(rule.id));
    return;
  }
  const data: EvaluateJobData = { ruleId: rule.id, orgId: rule.orgId };
  await queue.upsertJobScheduler(
    schedulerId(rule.id),
    { every: rule.intervalMs },
    { name: EVALUATE_JOB, data, opts: JOB_OPTS },
  );
}

/**
 * Brings the schedulers in Redis in line with the rules in Postgres: a scheduler for each enabled
 * rule at its interval, none for the others. Runs when an alerts process starts and then
 * periodically, so a rule written while Redis was down (or a Redis that lost its data) heals.
 */
export async function reconcileSchedules(
  db: Queryable,
  queue: Queue,
): Promise<{ upserted: number; removed: number }> {
  const rules = await enabledRules(db);
  const wanted = new Map(rules.map((r) => [r.id, r]));
  const existing = new Map<string, number | undefined>();
  for (let start = 0; ; start += 500) {
    const page = await queue.getJobSchedulers(start, start + 499, true);
    for (const s of page) {
      const id = ruleOf(s.key);
      if (id) existing.set(id, s.every === undefined || s.every === null ? undefined : Number(s.every));
    }
    if (page.length < 500) break;
  }
  let upserted = 0;
  let removed = 0;
  for (const rule of rules) {
    if (existing.get(rule.id) === rule.intervalMs) continue;
    await syncRuleSchedule(queue, { ...rule, enabled: true });
    upserted++;
  }
  for (const id of existing.keys()) {
    if (wanted.has(id)) continue;
    await queue.removeJobScheduler(schedulerId(id));
    removed++;
  }
  return { upserted, removed };
}
