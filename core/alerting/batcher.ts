import type { Db } from '../db/client.ts';
import type { Warehouse } from '../warehouse/client.ts';
import { evaluateRules, type EvaluationSummary } from './engine.ts';

export interface EvaluationBatcher {
  /** Evaluates the rule in the next batch; resolves with its summary. */
  evaluate(ruleId: string): Promise<EvaluationSummary>;
}

interface Waiting {
  ruleId: string;
  resolve(summary: EvaluationSummary): void;
  reject(error: unknown): void;
}

/**
 * Group commit for rule evaluations: the rules asked for while a batch runs are evaluated
 * together in the next one (at one `now`, with one grouped warehouse query per shared scope and
 * one transaction), so a lone rule is evaluated at once and a backlog costs a few batches rather
 * than one evaluation per rule. One batch runs at a time per process; batches hold at most
 * `maxBatch` rules.
 */
export function evaluationBatcher(
  deps: { db: Db; warehouse: Warehouse },
  options: { maxBatch?: number } = {},
): EvaluationBatcher {
  const maxBatch = options.maxBatch ?? 500;
  let waiting: Waiting[] = [];
  let running = false;

  async function drain() {
    running = true;
    while (waiting.length > 0) {
      const batch = waiting.slice(0, maxBatch);
      waiting = waiting.slice(maxBatch);
      try {
        const summaries = await evaluateRules(
          deps,
          batch.map((w) => w.ruleId),
        );
        batch.forEach((w, i) => w.resolve(summaries[i] as EvaluationSummary));
      } catch (error) {
        for (const w of batch) w.reject(error);
      }
    }
    running = false;
  }

  return {
    evaluate(ruleId) {
      return new Promise((resolve, reject) => {
        waiting.push({ ruleId, resolve, reject });
        // The jobs a worker takes in the same turn of the event loop join the first batch.
        if (!running) {
          running = true;
          setImmediate(() => void drain());
        }
      });
    },
  };
}
