import { BadRequestError } from '../errors.ts';
import { parseDuration } from './duration.ts';
import type { Step } from './rollout.ts';

export const STRATEGIES = ['immediate', 'canary', 'staged'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const MAX_STEPS = 20;

/** A canary step as a request gives it. */
export interface StepInput {
  weight: number;
  pause?: string | { approval: boolean } | undefined;
  analyze?: boolean | undefined;
}

/** What a canary gets when no steps are given: a tenth, then half, each watched for 5 minutes. */
export const DEFAULT_CANARY_STEPS: Step[] = [
  { weight: 10, pause: '5m' },
  { weight: 50, pause: '5m' },
  { weight: 100 },
];

export const pauseMs = (text: string) => parseDuration('pause', text);

/**
 * Canary steps, checked: 1–20 steps, whole-percent weights that rise strictly and end at 100, each
 * pause a duration (1s–30d) or `{ approval: true }`. Errors name the step.
 */
export function checkCanarySteps(input: readonly StepInput[]): Step[] {
  if (input.length === 0 || input.length > MAX_STEPS) {
    throw new BadRequestError(
      `a canary needs 1 to ${MAX_STEPS} steps; got ${input.length} (e.g. 5, 25, 50, 100)`,
      'invalid-steps',
    );
  }
  let previous = 0;
  return input
    .map((step, i) => {
      const at = `steps[${i}]`;
      if (!Number.isInteger(step.weight) || step.weight < 1 || step.weight > 100) {
        throw new BadRequestError(
          `${at}.weight ${step.weight} must be a whole percent from 1 to 100`,
          'invalid-steps',
        );
      }
      if (step.weight <= previous) {
        throw new BadRequestError(
          `${at}.weight ${step.weight} does not rise above the step before (${previous}); weights must rise strictly to 100, e.g. 5, 25, 50, 100`,
          'invalid-steps',
        );
      }
      previous = step.weight;
      const out: Step = { weight: step.weight };
      if (typeof step.pause === 'string') {
        parseDuration(`${at}.pause`, step.pause);
        out.pause = step.pause;
      } else if (step.pause !== undefined) {
        if (step.pause.approval !== true) {
          throw new BadRequestError(
            `${at}.pause must be a duration (e.g. 10m) or { "approval": true }`,
            'invalid-steps',
          );
        }
        out.pause = { approval: true };
      }
      if (step.analyze) out.analyze = true;
      return out;
    })
    .map((step, i, all) => {
      if (i === all.length - 1 && step.weight !== 100) {
        throw new BadRequestError(
          `the last step's weight is ${step.weight}; a canary ends at 100 (add a step { "weight": 100 })`,
          'invalid-steps',
        );
      }
      return step;
    });
}

/**
 * Staged rollback steps: the weights the version being rolled back keeps, falling strictly to 0
 * (e.g. 50, 20, 0). Stored as the steps of the restored version, whose weight rises to 100.
 */
export function stepDownSteps(remaining: readonly number[], pause: string): Step[] {
  if (remaining.length === 0 || remaining.length > MAX_STEPS) {
    throw new BadRequestError(
      `a staged rollback needs 1 to ${MAX_STEPS} steps; got ${remaining.length} (e.g. 50, 20, 0)`,
      'invalid-steps',
    );
  }
  parseDuration('pause', pause);
  let previous = 100;
  remaining.forEach((w, i) => {
    if (!Number.isInteger(w) || w < 0 || w > 100) {
      throw new BadRequestError(`steps[${i}] ${w} must be a whole percent from 0 to 99`, 'invalid-steps');
    }
    if (w >= previous) {
      throw new BadRequestError(
        `steps[${i}] ${w} does not fall below the step before (${previous}); a staged rollback steps the weight down to 0, e.g. 50, 20, 0`,
        'invalid-steps',
      );
    }
    previous = w;
  });
  if (remaining.at(-1) !== 0) {
    throw new BadRequestError(
      `a staged rollback ends at 0; the last step is ${remaining.at(-1)} (add 0)`,
      'invalid-steps',
    );
  }
  return remaining.map((w, i) => ({
    weight: 100 - w,
    ...(i < remaining.length - 1 ? { pause } : {}),
  }));
}
