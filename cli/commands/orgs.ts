import { api, type Command } from '../client.ts';

export const orgCommands: Command[] = [
  {
    name: 'orgs create',
    args: ['<slug>'],
    summary: 'create an org and its admin token (admins of @default)',
    flags: { name: { type: 'string', value: 'N', description: 'display name (default: the slug)' } },
    async run(ctx) {
      const [slug] = ctx.positionals as [string];
      const name = ctx.flags.name as string | undefined;
      const created = await api<{ org: { slug: string }; token: string }>(ctx.client, 'POST', '/orgs', {
        slug,
        ...(name ? { name } : {}),
      });
      ctx.print(
        created,
        `created org @${created.org.slug}; its admin token is shown only once:\n${created.token}`,
      );
    },
  },
];
