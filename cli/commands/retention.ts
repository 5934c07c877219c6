import type { RetentionPolicyView, ServerRetention } from '#core/registry/retention.ts';
import type { RetentionDecision } from '#core/registry/retention-plan.ts';
import { api, segment, table, type Command, type CommandContext } from '../client.ts';

type Decision = Omit<RetentionDecision, 'action'>;
interface Preview {
  server: string;
  policy: RetentionPolicyView | null;
  at: string;
  retire: Decision[];
  keep: Decision[];
}

const days = (n: number) => `${n} day${n === 1 ? '' : 's'}`;

/** "keep the newest 3 per line and anything deployed in the last 30 days", or "none". */
const rules = (p: RetentionPolicyView | null) =>
  p
    ? `keep the newest ${p.keepPerLine} per line and anything deployed in the last ${days(p.keepDeployedWithinDays)}` +
      (p.enabled ? '' : ' (disabled: the daily run skips it)')
    : 'none';

/** The policy with where it comes from: "weather's own policy: keep …". */
const describe = (p: RetentionPolicyView | null) =>
  p ? `${p.scope === 'server' ? `${p.server}'s own policy` : 'the org default'}: ${rules(p)}` : 'none';

const rows = (list: Decision[]) => list.map((d) => [d.version, d.status, d.line, d.reasons.join('; ')]);

function count(ctx: CommandContext, flag: string): number | undefined {
  const value = ctx.flags[flag];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d+$/.test(value))
    ctx.usage(`--${flag} needs a whole number, got ${String(value)}`);
  return Number(value);
}

const base = (server: string | undefined) =>
  server ? `/servers/${segment(server)}/retention` : '/retention';

export const retentionCommands: Command[] = [
  {
    name: 'retention preview',
    args: ['<server>'],
    summary: 'dry run: which versions the retention policy would retire now and why, and what it keeps',
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const p = await api<Preview>(ctx.client, 'GET', `${base(server)}/preview`);
      const header = ['VERSION', 'STATUS', 'LINE', 'WHY'];
      ctx.print(
        p,
        [
          `retention of ${p.server}: ${describe(p.policy)}`,
          p.retire.length
            ? `would retire ${p.retire.length}:\n${table(header, rows(p.retire))}`
            : 'would retire nothing',
          `keeps ${p.keep.length}:\n${table(header, rows(p.keep))}`,
        ].join('\n\n'),
      );
    },
  },
  {
    name: 'retention get',
    args: ['[server]'],
    summary: "a server's retention policy and the org default (without a server: the org default)",
    async run(ctx) {
      const [server] = ctx.positionals as [string | undefined];
      if (!server) {
        const org = await api<{ policy: RetentionPolicyView | null }>(ctx.client, 'GET', '/retention');
        ctx.print(org, `org default: ${rules(org.policy)}`);
        return;
      }
      const r = await api<ServerRetention>(ctx.client, 'GET', base(server));
      ctx.print(
        r,
        [
          `${r.server}: own policy: ${rules(r.policy)}`,
          `org default: ${rules(r.orgDefault)}`,
          `applies: ${describe(r.effective)}`,
        ].join('\n'),
      );
    },
  },
  {
    name: 'retention set',
    args: ['[server]'],
    summary:
      "set a server's retention policy (without a server: the org default); flags not given keep their current value",
    flags: {
      'keep-per-line': {
        type: 'string',
        value: 'N',
        description: 'keep the newest N versions of each line (at least 1)',
      },
      'keep-deployed-days': {
        type: 'string',
        value: 'D',
        description: 'keep anything deployed to, or running in, any environment in the last D days (0: none)',
      },
      disable: { type: 'boolean', description: 'keep the policy but have the daily run skip it' },
      enable: {
        type: 'boolean',
        description: 'have the daily run apply it again (the default for a new policy)',
      },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string | undefined];
      if (ctx.flags.disable && ctx.flags.enable) ctx.usage('--disable and --enable contradict each other');
      const current = server
        ? (await api<ServerRetention>(ctx.client, 'GET', base(server))).policy
        : (await api<{ policy: RetentionPolicyView | null }>(ctx.client, 'GET', '/retention')).policy;
      const keepPerLine = count(ctx, 'keep-per-line') ?? current?.keepPerLine;
      const keepDeployedWithinDays = count(ctx, 'keep-deployed-days') ?? current?.keepDeployedWithinDays;
      if (keepPerLine === undefined || keepDeployedWithinDays === undefined)
        ctx.usage('a new policy needs --keep-per-line N and --keep-deployed-days D');
      const enabled = ctx.flags.disable ? false : ctx.flags.enable ? true : (current?.enabled ?? true);
      const set = await api<RetentionPolicyView>(ctx.client, 'PUT', base(server), {
        keepPerLine,
        keepDeployedWithinDays,
        enabled,
      });
      ctx.print(set, server ? describe(set) : `org default: ${rules(set)}`);
    },
  },
  {
    name: 'retention delete',
    args: ['<server>'],
    summary: "remove a server's own retention policy (the org default applies to it again)",
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const deleted = await api<RetentionPolicyView>(ctx.client, 'DELETE', base(server));
      ctx.print(deleted, `${server}: own retention policy removed; the org default applies`);
    },
  },
];
