import { PERMISSIONS, type Permission } from '#core/auth/principal.ts';
import type { TokenView } from '#core/auth/tokens.ts';
import { api, segment, type Command } from '../client.ts';

export const tokenCommands: Command[] = [
  {
    name: 'tokens list',
    summary: 'list API tokens (admin)',
    flags: { all: { type: 'boolean', description: 'include revoked and expired tokens' } },
    async run(ctx) {
      const { tokens } = await api<{ tokens: TokenView[] }>(
        ctx.client,
        'GET',
        `/tokens${ctx.flags.all ? '?includeRevoked=true' : ''}`,
      );
      ctx.print(
        tokens,
        tokens
          .map(
            (t) =>
              `${t.id}  ${t.prefix}…  ${t.name}  ${t.permissions.join(',')}${t.active ? '' : '  (inactive)'}`,
          )
          .join('\n'),
      );
    },
  },
  {
    name: 'tokens create',
    summary: 'create an API token; it is shown only once (admin)',
    flags: {
      name: { type: 'string', value: 'N', required: true, description: 'what the token is for, e.g. ci' },
      permission: {
        type: 'string',
        multiple: true,
        value: 'P',
        required: true,
        description: `a permission (${PERMISSIONS.join(', ')}); repeat for more`,
      },
      server: {
        type: 'string',
        multiple: true,
        value: 'S',
        description: 'limit the token to this server; repeat for more',
      },
      environment: {
        type: 'string',
        multiple: true,
        value: 'E',
        description: 'limit deploy actions and gateway connections to this environment; repeat for more',
      },
      'expires-at': { type: 'string', value: 'T', description: 'expiry time, RFC 3339' },
    },
    async run(ctx) {
      const flags = ctx.flags as {
        name: string;
        permission: string[];
        server?: string[];
        environment?: string[];
        'expires-at'?: string;
      };
      const unknown = flags.permission.filter((p) => !(PERMISSIONS as readonly string[]).includes(p));
      if (unknown.length > 0) {
        ctx.usage(`unknown --permission ${unknown.join(', ')}; permissions are ${PERMISSIONS.join(', ')}`);
      }
      const created = await api<TokenView & { token: string }>(ctx.client, 'POST', '/tokens', {
        name: flags.name,
        permissions: flags.permission as Permission[],
        ...(flags.server ? { servers: flags.server } : {}),
        ...(flags.environment ? { environments: flags.environment } : {}),
        ...(flags['expires-at'] ? { expiresAt: flags['expires-at'] } : {}),
      });
      ctx.print(
        created,
        `created token ${created.name} (${created.id}); it is shown only once:\n${created.token}`,
      );
    },
  },
  {
    name: 'tokens revoke',
    args: ['<id>'],
    summary: 'revoke a token, at once and for good (admin)',
    async run(ctx) {
      const [id] = ctx.positionals as [string];
      const revoked = await api<TokenView>(ctx.client, 'DELETE', `/tokens/${segment(id)}`);
      ctx.print(revoked, `revoked token ${revoked.name} (${revoked.id})`);
    },
  },
];
