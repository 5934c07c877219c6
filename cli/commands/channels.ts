import type { ChannelView } from '#core/notify/channels.ts';
import type { DeliveryView } from '#core/notify/deliveries.ts';
import type { LabelMatcher } from '#core/notify/matchers.ts';
import type { SilenceView } from '#core/notify/silences.ts';
import { api, query, segment, type Command, type CommandContext } from '../client.ts';

const MATCHER = /^([a-zA-Z_][a-zA-Z0-9_.]*)(=~|!~|!=|=)(.*)$/s;

/** `environment=production`, `severity=~critical|warning`, `server!=demo` → matchers. */
export function parseMatchers(
  ctx: Pick<CommandContext, 'usage'>,
  values: string[] | undefined,
): LabelMatcher[] {
  return (values ?? []).map((text) => {
    const m = MATCHER.exec(text);
    if (!m) return ctx.usage(`--match "${text}" is not NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX`);
    return { name: m[1] as string, op: m[2] as LabelMatcher['op'], value: m[3] as string };
  });
}

const showMatchers = (ms: LabelMatcher[]) => ms.map((m) => `${m.name}${m.op}${m.value}`).join(',') || '(all)';

const matchFlag = {
  type: 'string',
  multiple: true,
  value: 'M',
  description:
    'label matcher: name=value, name!=value, name=~regex, name!~regex; repeat for more (all must hold)',
} as const;

export const channelCommands: Command[] = [
  {
    name: 'channels list',
    summary: 'list notification channels (URLs are never shown)',
    async run(ctx) {
      const { channels } = await api<{ channels: ChannelView[] }>(ctx.client, 'GET', '/channels');
      ctx.print(
        channels,
        channels
          .map(
            (c) =>
              `${c.id}  ${c.kind.padEnd(7)}  ${c.name}  ${c.target}  events=${c.events.join(',')}  match=${showMatchers(c.matchers)}`,
          )
          .join('\n'),
      );
    },
  },
  {
    name: 'channels create',
    summary: 'create a Slack or signed-webhook channel; a webhook secret is shown only once (admin)',
    flags: {
      name: { type: 'string', value: 'N', required: true, description: 'channel name, e.g. oncall' },
      kind: {
        type: 'string',
        value: 'slack|webhook',
        required: true,
        description: 'Slack incoming webhook or signed webhook',
      },
      // Not --url: that global flag names the Pylee API.
      target: {
        type: 'string',
        value: 'URL',
        required: true,
        description: 'Slack incoming-webhook URL or webhook receiver URL',
      },
      event: {
        type: 'string',
        multiple: true,
        value: 'E',
        description:
          'event type or pattern (deployment.*, alert.firing, canary.verdict); repeat; default all',
      },
      match: matchFlag,
    },
    async run(ctx) {
      const flags = ctx.flags as {
        name: string;
        kind: string;
        target: string;
        event?: string[];
        match?: string[];
      };
      if (flags.kind !== 'slack' && flags.kind !== 'webhook') ctx.usage('--kind must be slack or webhook');
      const created = await api<ChannelView & { secret: string | null }>(ctx.client, 'POST', '/channels', {
        name: flags.name,
        kind: flags.kind,
        url: flags.target,
        ...(flags.event ? { events: flags.event } : {}),
        matchers: parseMatchers(ctx, flags.match),
      });
      ctx.print(
        created,
        `created ${created.kind} channel ${created.name} (${created.id})` +
          (created.secret ? `; its signing secret is shown only once:\n${created.secret}` : ''),
      );
    },
  },
  {
    name: 'channels delete',
    args: ['<id>'],
    summary: 'delete a channel and its pending deliveries (admin)',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      await api(ctx.client, 'DELETE', `/channels/${segment(id)}`);
      ctx.print({ id, deleted: true }, `deleted channel ${id}`);
    },
  },
  {
    name: 'channels rotate-secret',
    args: ['<id>'],
    summary: "replace a webhook channel's signing secret; the old one signs too for 24 h (admin)",
    flags: { now: { type: 'boolean', description: 'stop signing with the old secret at once' } },
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const rotated = await api<ChannelView & { secret: string }>(
        ctx.client,
        'POST',
        `/channels/${segment(id)}/rotate-secret${query({ previousValidSeconds: ctx.flags.now ? '0' : undefined })}`,
      );
      ctx.print(rotated, `new signing secret of ${rotated.name}, shown only once:\n${rotated.secret}`);
    },
  },
  {
    name: 'channels test',
    args: ['<id>'],
    summary: 'send a test message to one channel',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const sent = await api<{ deliveryId: string }>(ctx.client, 'POST', `/channels/${segment(id)}/test`);
      ctx.print(sent, `test message queued as delivery ${sent.deliveryId}; see pylee deliveries list`);
    },
  },
  {
    name: 'silences list',
    summary: 'list silences',
    flags: {
      state: { type: 'string', value: 'pending|active|expired', description: 'only silences in this state' },
    },
    async run(ctx) {
      const { silences } = await api<{ silences: SilenceView[] }>(
        ctx.client,
        'GET',
        `/silences${query({ state: ctx.flags.state as string | undefined })}`,
      );
      ctx.print(
        silences,
        silences
          .map(
            (s) =>
              `${s.id}  ${s.state.padEnd(7)}  ${showMatchers(s.matchers)}  until ${s.endsAt}  by ${s.createdBy}: ${s.comment}`,
          )
          .join('\n'),
      );
    },
  },
  {
    name: 'silences create',
    summary: 'silence notifications whose labels match, e.g. --match server=weather --for 2h',
    flags: {
      match: { ...matchFlag, required: true },
      for: { type: 'string', value: 'D', description: 'how long from now: 30m, 2h, 1d (or give --ends-at)' },
      'starts-at': { type: 'string', value: 'T', description: 'start, RFC 3339 (default now)' },
      'ends-at': { type: 'string', value: 'T', description: 'end, RFC 3339' },
      comment: { type: 'string', value: 'C', required: true, description: 'why' },
    },
    async run(ctx) {
      const flags = ctx.flags as {
        match: string[];
        for?: string;
        'starts-at'?: string;
        'ends-at'?: string;
        comment: string;
      };
      let endsAt = flags['ends-at'];
      if (!endsAt) {
        const m = /^(\d+)(m|h|d)$/.exec(flags.for ?? '');
        if (!m) return ctx.usage('give --for 30m|2h|1d or --ends-at');
        const ms = Number(m[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'm' | 'h' | 'd'];
        const from = flags['starts-at'] ? new Date(flags['starts-at']).getTime() : Date.now();
        endsAt = new Date(from + ms).toISOString();
      }
      const created = await api<SilenceView>(ctx.client, 'POST', '/silences', {
        matchers: parseMatchers(ctx, flags.match),
        ...(flags['starts-at'] ? { startsAt: flags['starts-at'] } : {}),
        endsAt,
        comment: flags.comment,
      });
      ctx.print(created, `silence ${created.id} (${created.state}) until ${created.endsAt}`);
    },
  },
  {
    name: 'silences expire',
    args: ['<id>'],
    summary: 'end a silence now',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const expired = await api<SilenceView>(ctx.client, 'DELETE', `/silences/${segment(id)}`);
      ctx.print(expired, `silence ${expired.id} expired at ${expired.endsAt}`);
    },
  },
  {
    name: 'deliveries list',
    summary: 'notification deliveries, newest first (--status dead: the dead-letter list)',
    flags: {
      status: { type: 'string', value: 'pending|delivered|dead|suppressed', description: 'only this status' },
      channel: { type: 'string', value: 'ID', description: 'only this channel' },
    },
    async run(ctx) {
      const { deliveries } = await api<{ deliveries: DeliveryView[] }>(
        ctx.client,
        'GET',
        `/deliveries${query({ status: ctx.flags.status as string | undefined, channelId: ctx.flags.channel as string | undefined })}`,
      );
      ctx.print(
        deliveries,
        deliveries
          .map(
            (d) =>
              `${d.id}  ${d.status.padEnd(10)}  ${d.channelName}  ${d.eventType}  attempts=${d.attempts}` +
              `${d.lastStatusCode ? `  HTTP ${d.lastStatusCode}` : ''}${d.lastError && d.status !== 'delivered' ? `  ${d.lastError}` : ''}`,
          )
          .join('\n'),
      );
    },
  },
  {
    name: 'deliveries redeliver',
    args: ['<id>'],
    summary: 'send a dead delivery again (same id, fresh attempts)',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const d = await api<DeliveryView>(ctx.client, 'POST', `/deliveries/${segment(id)}/redeliver`);
      ctx.print(d, `delivery ${d.id} is pending again`);
    },
  },
];
