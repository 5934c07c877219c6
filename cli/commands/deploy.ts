import { setTimeout as sleep } from 'node:timers/promises';
import type { EnvironmentView, Gate } from '#core/deploy/environments.ts';
import type { EnvironmentStatus } from '#core/deploy/queries.ts';
import { SESSION_POLICIES, type DeploymentDetail, type DeploymentView } from '#core/deploy/records.ts';
import type { RollbackResult } from '#core/deploy/rollback.ts';
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

const deploymentsPath = (server: string) => `/servers/${segment(server)}/deployments`;
const FINAL = ['succeeded', 'failed', 'aborted', 'rolled-back'];
const DURATION = /^\d{1,7}(ms|s|m|h|d)$/;
const WAIT_INTERVAL_MS = 1000;

const WAIT_FLAGS: Record<string, FlagSpec> = {
  wait: {
    type: 'boolean',
    description: 'block until the rollout ends; exit 1 if it failed, was aborted or rolled back',
  },
  timeout: { type: 'string', value: 'D', description: 'with --wait: give up after D (default 30m), exit 1' },
};
const REASON: Record<string, FlagSpec> = {
  reason: { type: 'string', value: 'R', description: 'why; kept on the timeline and in the audit trail' },
};
const SESSIONS = (byDefault: string): Record<string, FlagSpec> => ({
  sessions: {
    type: 'string',
    value: 'P',
    description: `live MCP sessions of a version losing its traffic by abort or rollback: migrate (to the remaining version), terminate (404) or drain (until idle); default ${byDefault}`,
  },
});

/** The --sessions flag, if given, checked against the three policies. */
function sessionsFlag(ctx: CommandContext): { sessions?: string } {
  const value = ctx.flags.sessions as string | undefined;
  if (value === undefined) return {};
  if (!(SESSION_POLICIES as readonly string[]).includes(value))
    ctx.usage(`--sessions ${value} is not migrate, terminate or drain`);
  return { sessions: value };
}

const TARGET: Record<string, FlagSpec> = {
  env: { type: 'string', value: 'E', description: 'the environment whose active rollout to act on' },
};

function durationMs(ctx: CommandContext, flag: string, value: string): number {
  const match = /^(\d{1,7})(ms|s|m|h|d)$/.exec(value);
  if (!match) return ctx.usage(`--${flag} ${value} is not a duration (e.g. 30s, 10m, 1h)`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as 'ms'];
  return Number(match[1]) * unit;
}

/**
 * `--steps 5,25,50,100` (with `--pause 10m` or `--approval` on every step but the last), or per step
 * `5:10m,25:approval,50,100`.
 */
export function parseSteps(
  ctx: Pick<CommandContext, 'usage'>,
  text: string,
  pause: string | undefined,
  approval: boolean,
  analyze: boolean,
) {
  if (pause && approval) ctx.usage('give --pause or --approval, not both');
  const items = text.split(',').map((s) => s.trim());
  return items.map((item, i) => {
    const [weightText, own] = item.split(':');
    if (!/^\d{1,3}$/.test(weightText ?? '')) {
      ctx.usage(`--steps ${text}: "${item}" is not a weight (a whole percent, optionally :10m or :approval)`);
    }
    const last = i === items.length - 1;
    const step: { weight: number; pause?: string | { approval: true }; analyze?: boolean } = {
      weight: Number(weightText),
    };
    const p = own ?? (last ? undefined : approval ? 'approval' : pause);
    if (p === 'approval') step.pause = { approval: true };
    else if (p !== undefined) {
      if (!DURATION.test(p))
        ctx.usage(`--steps ${text}: pause "${p}" is not a duration (e.g. 10m) or approval`);
      step.pause = p;
    }
    if (analyze && !last) step.analyze = true;
    return step;
  });
}

function describeDeployment(d: DeploymentView): string {
  const step = d.currentStep === null ? '' : ` step ${d.currentStep + 1}/${d.steps.length},`;
  let state: string = d.status;
  if (d.status === 'paused' && d.pause) {
    state =
      d.pause.kind === 'approval'
        ? 'paused (waiting for approval: pylee promote)'
        : d.pause.kind === 'timer'
          ? `paused until ${shortTime(d.pause.until)} UTC`
          : 'paused by hand (pylee resume)';
  } else if (d.status === 'progressing' && d.awaiting) state = `progressing (waiting for ${d.awaiting})`;
  const where =
    d.currentEnvironment === d.environment ? d.environment : `${d.currentEnvironment} → ${d.environment}`;
  const kind = d.kind === 'rollback' ? 'rollback ' : '';
  return `${kind}${d.server} ${d.version} in ${where} (${d.strategy}): ${state},${step} weight ${d.weight}%, sessions ${d.sessions}${d.statusReason ? ` — ${d.statusReason}` : ''}\nid ${d.id}`;
}

async function waitFor(ctx: CommandContext, server: string, ids: string[]): Promise<DeploymentView[]> {
  const timeout = durationMs(ctx, 'timeout', (ctx.flags.timeout as string | undefined) ?? '30m');
  const deadline = Date.now() + timeout;
  const done = new Map<string, DeploymentView>();
  let last = '';
  for (;;) {
    for (const id of ids) {
      if (done.has(id)) continue;
      const d = await api<DeploymentView>(ctx.client, 'GET', `${deploymentsPath(server)}/${segment(id)}`);
      const line = `${d.version} ${d.currentEnvironment}: ${d.status} ${d.weight}%`;
      if (!ctx.json && line !== last) ctx.warn(line);
      last = line;
      if (FINAL.includes(d.status)) done.set(id, d);
    }
    if (done.size === ids.length) return ids.map((id) => done.get(id) as DeploymentView);
    if (Date.now() > deadline) {
      throw new AppError(
        504,
        'wait-timeout',
        'Timed out',
        `the rollout did not end within ${ctx.flags.timeout ?? '30m'}; it goes on (pylee status ${server})`,
      );
    }
    await sleep(WAIT_INTERVAL_MS);
  }
}

/** Prints a deployment, waits when asked, and returns the exit code: 1 if a waited-for rollout did not succeed. */
async function finish(ctx: CommandContext, server: string, d: DeploymentView): Promise<number> {
  if (!ctx.flags.wait) {
    ctx.print(d, describeDeployment(d));
    return 0;
  }
  const [final] = await waitFor(ctx, server, [d.id]);
  ctx.print(final, describeDeployment(final as DeploymentView));
  return final?.status === 'succeeded' ? 0 : 1;
}

/** The deployment an action is for: the id given, or the active rollout in `--env`. */
async function target(ctx: CommandContext): Promise<{ server: string; id: string }> {
  const [server, id] = ctx.positionals as [string, string | undefined];
  if (id) return { server, id };
  const env = ctx.flags.env as string | undefined;
  if (!env) return ctx.usage('give the deployment id or --env E (its active rollout)');
  const { deployments } = await api<{ deployments: DeploymentView[] }>(
    ctx.client,
    'GET',
    `${deploymentsPath(server)}${query({ environment: env, active: true })}`,
  );
  const active = deployments.find((d) => d.currentEnvironment === env) ?? deployments[0];
  if (!active) {
    throw new AppError(404, 'no-active-rollout', 'Not found', `${server} has no active rollout in ${env}`);
  }
  return { server, id: active.id };
}

function action(
  name: 'promote' | 'pause' | 'resume' | 'abort',
  summary: string,
  extra: Record<string, FlagSpec> = {},
): Command {
  const waits = name === 'promote' || name === 'resume';
  return {
    name,
    args: ['<server>', '[deployment-id]'],
    summary,
    flags: { ...TARGET, ...extra, ...REASON, ...(waits ? WAIT_FLAGS : {}) },
    async run(ctx) {
      const { server, id } = await target(ctx);
      const d = await api<DeploymentView>(
        ctx.client,
        'POST',
        `${deploymentsPath(server)}/${segment(id)}/${name}`,
        {
          ...(ctx.flags.reason ? { reason: ctx.flags.reason } : {}),
          ...(ctx.flags.full ? { full: true } : {}),
        },
      );
      return finish(ctx, server, d);
    },
  };
}

const GATE_HELP =
  'soak:ENV:DURATION, no-prerelease, environment-permission, version-status:S[,S], no-vulnerabilities[:SEVERITY], allowed-packages[:allow-deprecated]';

function parseGate(ctx: CommandContext, text: string): Gate {
  const [type, ...rest] = text.split(':');
  if (type === 'soak' && rest.length === 2 && rest[0] && DURATION.test(rest[1] ?? '')) {
    return { type: 'soak', environment: rest[0], duration: rest[1] as string };
  }
  if ((type === 'no-prerelease' || type === 'environment-permission') && rest.length === 0) return { type };
  if (type === 'no-vulnerabilities' && rest.length <= 1) {
    return { type, severity: (rest[0] ?? 'high') as 'high' };
  }
  if (
    type === 'allowed-packages' &&
    (rest.length === 0 || (rest.length === 1 && rest[0] === 'allow-deprecated'))
  ) {
    return { type, allowDeprecated: rest.length === 1 };
  }
  if (type === 'version-status' && rest.length === 1 && rest[0]) {
    return { type: 'version-status', status: rest[0].split(',') };
  }
  return ctx.usage(`--gate ${text} is not a gate; gates: ${GATE_HELP}`);
}

const describeGate = (g: Gate) =>
  g.type === 'soak'
    ? `soak ${g.duration} in ${g.environment}`
    : g.type === 'version-status'
      ? `status ${g.status.join('|')}`
      : g.type === 'no-vulnerabilities'
        ? `no ${g.severity}+ vulnerabilities`
        : g.type === 'allowed-packages'
          ? `allowed packages${g.allowDeprecated ? ' (deprecated ok)' : ''}`
          : g.type;

const describeEnvironments = (envs: EnvironmentView[]) =>
  table(
    ['#', 'ENVIRONMENT', 'PROTECTED', 'GATES'],
    envs.map((e) => [
      String(e.position),
      e.name,
      e.protected ? 'yes' : '',
      e.gates.map(describeGate).join('; ') || '-',
    ]),
  );

export const deployCommands: Command[] = [
  {
    name: 'deploy',
    args: ['<server>', '<version>'],
    summary: 'deploy a version to an environment (immediate, canary or staged)',
    flags: {
      env: {
        type: 'string',
        value: 'E',
        required: true,
        description: 'the environment (staged: the last one)',
      },
      strategy: {
        type: 'string',
        value: 'S',
        description: 'immediate (default), canary (with --steps), staged',
      },
      steps: {
        type: 'string',
        value: 'W,W,...',
        description: 'canary weights rising to 100, e.g. 5,25,50,100 (or 5:10m,25:approval,100)',
      },
      pause: {
        type: 'string',
        value: 'D',
        description: 'canary: hold each step but the last for D, e.g. 10m',
      },
      approval: { type: 'boolean', description: 'canary: each step but the last waits for pylee promote' },
      analyze: {
        type: 'boolean',
        description: 'canary: each step but the last waits for an analysis verdict',
      },
      from: { type: 'string', value: 'E', description: 'staged: the first environment of the path' },
      verify: {
        type: 'boolean',
        description: 'wait in verifying for startup checks (default: if the server has some)',
      },
      'rollback-on-failure': {
        type: 'boolean',
        description: 'a failed verification or analysis ends as rolled-back',
      },
      ...SESSIONS('migrate'),
      ...REASON,
      ...WAIT_FLAGS,
    },
    async run(ctx) {
      const [server, version] = ctx.positionals as [string, string];
      const flags = ctx.flags as Record<string, string | boolean | undefined>;
      const strategy = (flags.strategy as string | undefined) ?? (flags.steps ? 'canary' : undefined);
      if (strategy !== undefined && !['immediate', 'canary', 'staged'].includes(strategy)) {
        ctx.usage(`--strategy ${strategy} is not immediate, canary or staged`);
      }
      if (flags.steps && strategy !== 'canary') ctx.usage('--steps needs --strategy canary');
      if (flags.pause !== undefined) durationMs(ctx, 'pause', flags.pause as string);
      const steps = flags.steps
        ? parseSteps(
            ctx,
            flags.steps as string,
            flags.pause as string | undefined,
            flags.approval === true,
            flags.analyze === true,
          )
        : undefined;
      if (!steps && (flags.pause || flags.approval || flags.analyze)) {
        ctx.usage('--pause, --approval and --analyze apply to --steps');
      }
      const d = await api<DeploymentView>(ctx.client, 'POST', deploymentsPath(server), {
        version,
        environment: flags.env,
        ...(strategy ? { strategy } : {}),
        ...(steps ? { steps } : {}),
        ...(flags.from ? { from: flags.from } : {}),
        ...(flags.reason ? { reason: flags.reason } : {}),
        ...(flags.verify ? { verification: { required: true } } : {}),
        ...(flags['rollback-on-failure'] ? { rollbackOnFailure: true } : {}),
        ...sessionsFlag(ctx),
      });
      return finish(ctx, server, d);
    },
  },
  action('promote', 'move an active rollout to its next step (--full: to 100 % at once)', {
    full: { type: 'boolean', description: 'all the way to 100 %' },
  }),
  action('pause', 'hold an active rollout where it is'),
  action('resume', 'go on after pylee pause'),
  action('abort', 'stop an active rollout: the new version gets no more traffic there'),
  {
    name: 'rollback',
    args: ['<server>'],
    summary:
      'roll back: --env E (immediate, to the last known good version), several --env (selective), --mode staged (weight stepped down)',
    flags: {
      env: {
        type: 'string',
        multiple: true,
        value: 'E',
        required: true,
        description: 'environment; repeat for a selective rollback',
      },
      mode: { type: 'string', value: 'M', description: 'immediate (one --env), selective (several), staged' },
      steps: {
        type: 'string',
        value: 'W,...,0',
        description: 'staged: weights the current version keeps, falling to 0 (default 50,0)',
      },
      pause: { type: 'string', value: 'D', description: 'staged: how long each step holds (default 5m)' },
      ...SESSIONS('that of the deployment rolled back'),
      ...REASON,
      ...WAIT_FLAGS,
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const envs = ctx.flags.env as string[];
      const mode = (ctx.flags.mode as string | undefined) ?? (envs.length > 1 ? 'selective' : 'immediate');
      if (!['immediate', 'selective', 'staged'].includes(mode))
        ctx.usage(`--mode ${mode} is not immediate, selective or staged`);
      if (mode !== 'selective' && envs.length > 1)
        ctx.usage(`a ${mode} rollback takes one --env; use --mode selective`);
      let steps: number[] | undefined;
      if (ctx.flags.steps) {
        if (mode !== 'staged') ctx.usage('--steps applies to --mode staged');
        steps = (ctx.flags.steps as string).split(',').map((w) => {
          if (!/^\d{1,3}$/.test(w.trim()))
            ctx.usage(`--steps ${ctx.flags.steps as string}: "${w}" is not a weight`);
          return Number(w);
        });
      }
      if (ctx.flags.pause !== undefined) durationMs(ctx, 'pause', ctx.flags.pause as string);
      const result = await api<RollbackResult>(ctx.client, 'POST', `/servers/${segment(server)}/rollback`, {
        mode,
        ...(mode === 'selective' ? { environments: envs } : { environment: envs[0] }),
        ...(steps ? { steps } : {}),
        ...(ctx.flags.pause ? { pause: ctx.flags.pause } : {}),
        ...(ctx.flags.reason ? { reason: ctx.flags.reason } : {}),
        ...sessionsFlag(ctx),
      });
      const describe = (r: RollbackResult) =>
        r.environments
          .map(
            (e) =>
              `${e.environment}: ${e.from ?? '-'} → ${e.to ?? '-'} (${describeDeployment(e.deployment)})`,
          )
          .join('\n');
      if (!ctx.flags.wait) {
        ctx.print(result, describe(result));
        return 0;
      }
      const finals = await waitFor(
        ctx,
        server,
        result.environments.map((e) => e.deployment.id),
      );
      const after: RollbackResult = {
        ...result,
        environments: result.environments.map((e, i) => ({ ...e, deployment: finals[i] as DeploymentView })),
      };
      ctx.print(after, describe(after));
      // Rolled back means what was asked happened: a rollback deployment succeeded, or a rollout's traffic went back.
      const ok = finals.every(
        (d) => (d.kind === 'rollback' && d.status === 'succeeded') || d.status === 'rolled-back',
      );
      return ok ? 0 : 1;
    },
  },
  {
    name: 'status',
    args: ['<server>'],
    summary: 'what runs where: per environment the stable version, an active rollout and its weight',
    flags: {
      history: {
        type: 'string',
        value: 'N',
        description: 'also list the last N deployments per environment',
      },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const history = ctx.flags.history as string | undefined;
      if (history !== undefined && !/^\d{1,3}$/.test(history))
        ctx.usage(`--history ${history} is not a number`);
      const res = await api<{ server: string; environments: EnvironmentStatus[] }>(
        ctx.client,
        'GET',
        `/servers/${segment(server)}/environments${query({ history: history ?? '0' })}`,
      );
      const rows = res.environments.map((e) => [
        e.environment,
        e.stable?.version ?? '-',
        e.stable ? `${shortTime(e.stable.since)} by ${e.stable.by}` : '-',
        e.canary ? `${e.canary.version} at ${e.canary.weight}% (${e.canary.status})` : '-',
        e.rollbackTarget ?? '-',
      ]);
      const lines = [table(['ENVIRONMENT', 'STABLE', 'SINCE', 'ROLLOUT', 'ROLLBACK TO'], rows)];
      for (const e of res.environments) {
        if (!e.history.length) continue;
        lines.push('', `${e.environment}:`);
        for (const h of e.history)
          lines.push(
            `  ${shortTime(h.createdAt)}  ${h.version}  ${h.kind === 'rollback' ? 'rollback ' : ''}${h.strategy}  ${h.status}  by ${h.createdBy}`,
          );
      }
      ctx.print(res, lines.join('\n'));
    },
  },
  {
    name: 'deployments list',
    args: ['<server>'],
    summary: 'list deployments, newest first',
    flags: {
      env: { type: 'string', value: 'E', description: 'only this environment' },
      active: { type: 'boolean', description: 'only active rollouts' },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const { deployments } = await api<{ deployments: DeploymentView[] }>(
        ctx.client,
        'GET',
        `${deploymentsPath(server)}${query({ environment: ctx.flags.env as string | undefined, active: ctx.flags.active === true ? true : undefined })}`,
      );
      ctx.print(
        deployments,
        table(
          ['ID', 'VERSION', 'ENVIRONMENT', 'STRATEGY', 'STATUS', 'WEIGHT', 'CREATED'],
          deployments.map((d) => [
            d.id,
            d.version,
            d.currentEnvironment,
            `${d.kind === 'rollback' ? 'rollback/' : ''}${d.strategy}`,
            d.status,
            `${d.weight}%`,
            `${shortTime(d.createdAt)} by ${d.createdBy}`,
          ]),
        ),
      );
    },
  },
  {
    name: 'deployments show',
    args: ['<server>', '<deployment-id>'],
    summary: 'a deployment and its timeline',
    async run(ctx) {
      const [server, id] = ctx.positionals as [string, string];
      const d = await api<DeploymentDetail>(ctx.client, 'GET', `${deploymentsPath(server)}/${segment(id)}`);
      const timeline = d.events.map(
        (e) =>
          `  ${shortTime(e.at)}  ${e.action.padEnd(8)} ${e.from ?? '-'} → ${e.to}  ${e.environment} ${e.weight}%  by ${e.actor}${e.reason ? `: ${e.reason}` : ''}`,
      );
      ctx.print(d, [describeDeployment(d), 'timeline:', ...timeline].join('\n'));
    },
  },
  {
    name: 'environments list',
    summary: 'list environments in pipeline order, with their gates',
    async run(ctx) {
      const { environments } = await api<{ environments: EnvironmentView[] }>(
        ctx.client,
        'GET',
        '/environments',
      );
      ctx.print(environments, describeEnvironments(environments));
    },
  },
  {
    name: 'environments create',
    args: ['<name>'],
    summary: 'add an environment to the pipeline (admin)',
    flags: {
      after: { type: 'string', value: 'E', description: 'place it right after E (default: last)' },
      before: { type: 'string', value: 'E', description: 'place it right before E' },
      protected: { type: 'boolean', description: 'no pre-release versions' },
      gate: { type: 'string', multiple: true, value: 'G', description: `a promotion gate: ${GATE_HELP}` },
      description: { type: 'string', value: 'D', description: 'what it is for' },
    },
    async run(ctx) {
      const [name] = ctx.positionals as [string];
      const gates = ((ctx.flags.gate as string[] | undefined) ?? []).map((g) => parseGate(ctx, g));
      const env = await api<EnvironmentView>(ctx.client, 'POST', '/environments', {
        name,
        gates,
        ...(ctx.flags.after ? { after: ctx.flags.after } : {}),
        ...(ctx.flags.before ? { before: ctx.flags.before } : {}),
        ...(ctx.flags.protected ? { protected: true } : {}),
        ...(ctx.flags.description ? { description: ctx.flags.description } : {}),
      });
      ctx.print(env, describeEnvironments([env]));
    },
  },
  {
    name: 'environments update',
    args: ['<name>'],
    summary: 'change protection, gates or place in the pipeline (admin)',
    flags: {
      protected: { type: 'boolean', description: 'no pre-release versions' },
      unprotected: { type: 'boolean', description: 'allow pre-release versions' },
      gate: { type: 'string', multiple: true, value: 'G', description: `replace the gates: ${GATE_HELP}` },
      'no-gates': { type: 'boolean', description: 'remove every gate' },
      after: { type: 'string', value: 'E', description: 'move it right after E' },
      before: { type: 'string', value: 'E', description: 'move it right before E' },
    },
    async run(ctx) {
      const [name] = ctx.positionals as [string];
      if (ctx.flags.protected && ctx.flags.unprotected)
        ctx.usage('give --protected or --unprotected, not both');
      if (ctx.flags.gate && ctx.flags['no-gates']) ctx.usage('give --gate or --no-gates, not both');
      const body = {
        ...(ctx.flags.protected ? { protected: true } : ctx.flags.unprotected ? { protected: false } : {}),
        ...(ctx.flags.gate ? { gates: (ctx.flags.gate as string[]).map((g) => parseGate(ctx, g)) } : {}),
        ...(ctx.flags['no-gates'] ? { gates: [] } : {}),
        ...(ctx.flags.after ? { after: ctx.flags.after } : {}),
        ...(ctx.flags.before ? { before: ctx.flags.before } : {}),
      };
      if (Object.keys(body).length === 0) ctx.usage('nothing to change');
      const env = await api<EnvironmentView>(ctx.client, 'PATCH', `/environments/${segment(name)}`, body);
      ctx.print(env, describeEnvironments([env]));
    },
  },
];
