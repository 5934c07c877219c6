import type { InhibitionView } from '#core/alerting/inhibitions.ts';
import type { LabelMatcher } from '#core/notify/matchers.ts';
import { api, segment, type Command } from '../client.ts';
import { parseMatchers } from './channels.ts';

const show = (ms: LabelMatcher[]) => ms.map((m) => `${m.name}${m.op}${m.value}`).join(',');
const matcherFlag = (side: string) =>
  ({
    type: 'string',
    multiple: true,
    value: 'M',
    required: true,
    description: `${side} matcher: name=value, name!=value, name=~regex, name!~regex; repeat for more (all must hold)`,
  }) as const;

export const inhibitionCommands: Command[] = [
  {
    name: 'inhibitions list',
    summary: 'list inhibition rules: while a source alert fires, matching target alerts are not notified',
    async run(ctx) {
      const { inhibitions } = await api<{ inhibitions: InhibitionView[] }>(ctx.client, 'GET', '/inhibitions');
      ctx.print(
        inhibitions,
        inhibitions
          .map(
            (i) =>
              `${i.id}  ${i.name ?? '-'}  source=${show(i.sourceMatchers)}  target=${show(i.targetMatchers)}` +
              `  equal=${i.equal.join(',') || '-'}${i.comment ? `  # ${i.comment}` : ''}`,
          )
          .join('\n'),
      );
    },
  },
  {
    name: 'inhibitions create',
    summary:
      'create an inhibition rule, e.g. --source severity=critical --target severity=warning --equal server,environment',
    flags: {
      source: matcherFlag('source'),
      target: matcherFlag('target'),
      equal: {
        type: 'string',
        multiple: true,
        value: 'L,…',
        description: 'labels that must have the same value on source and target, comma-separated or repeated',
      },
      name: { type: 'string', value: 'N', description: 'a name for the rule' },
      comment: { type: 'string', value: 'C', description: 'why' },
    },
    async run(ctx) {
      const flags = ctx.flags as {
        source: string[];
        target: string[];
        equal?: string[];
        name?: string;
        comment?: string;
      };
      // The silences' parser, its usage errors naming this command's flag.
      const as = (flag: string) => ({
        usage: (message: string) => ctx.usage(message.replace('--match', flag)),
      });
      const created = await api<InhibitionView>(ctx.client, 'POST', '/inhibitions', {
        sourceMatchers: parseMatchers(as('--source'), flags.source),
        targetMatchers: parseMatchers(as('--target'), flags.target),
        equal: (flags.equal ?? [])
          .flatMap((e) => e.split(','))
          .map((e) => e.trim())
          .filter(Boolean),
        ...(flags.name !== undefined ? { name: flags.name } : {}),
        ...(flags.comment !== undefined ? { comment: flags.comment } : {}),
      });
      ctx.print(
        created,
        `inhibition rule ${created.id}: while ${show(created.sourceMatchers)} fires, ${show(created.targetMatchers)}` +
          ` is not notified${created.equal.length ? ` (same ${created.equal.join(', ')})` : ''}`,
      );
    },
  },
  {
    name: 'inhibitions delete',
    args: ['<id>'],
    summary: 'delete an inhibition rule; the alerts it held are notified within one group interval',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const deleted = await api<InhibitionView>(ctx.client, 'DELETE', `/inhibitions/${segment(id)}`);
      ctx.print(deleted, `deleted inhibition rule ${deleted.id}`);
    },
  },
];
