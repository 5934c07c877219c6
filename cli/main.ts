#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, StartupError, AppError } from '#core/errors.ts';
import { PERMISSIONS, type Permission } from '#core/auth/principal.ts';
import type { TokenView } from '#core/auth/tokens.ts';
import { PYLEE_VERSION } from '#core/version.ts';
import { api, clientOptions } from './client.ts';

const USAGE = `pylee ${PYLEE_VERSION}: version registry and release health for MCP servers

Usage:
  pylee start [--role all|api|collector|alerts]   run the platform (npm start)
  pylee me                                        show the org and permissions of PYLEE_TOKEN
  pylee tokens list [--all]                       list API tokens (admin)
  pylee tokens create --name N --permission P [--permission P…] [--server S…] [--expires-at T]
  pylee tokens revoke <id>
  pylee orgs create <slug> [--name N]             create an org and its admin token (admins of @default)
  pylee audit verify [--org slug]                 check the audit hash chain; exit 1 if broken

Client commands use PYLEE_URL (default http://127.0.0.1:8080) and PYLEE_TOKEN, or --url and --token.
Add --json for machine-readable output.`;

const EXIT = { ok: 0, failure: 1, usage: 2, config: 78 } as const;

const out = (text: string) => process.stdout.write(`${text}\n`);

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      role: { type: 'string' },
      json: { type: 'boolean', default: false },
      url: { type: 'string' },
      token: { type: 'string' },
      org: { type: 'string' },
      name: { type: 'string' },
      permission: { type: 'string', multiple: true },
      server: { type: 'string', multiple: true },
      'expires-at': { type: 'string' },
      all: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      version: { type: 'boolean', short: 'v', default: false },
    },
  });
  const client = clientOptions(values);
  const print = (json: unknown, text: string) => out(values.json ? JSON.stringify(json, null, 2) : text);
  const [command, sub, arg] = positionals;
  if (values.version) return (out(PYLEE_VERSION), EXIT.ok);
  if (values.help || !command) return (out(USAGE), values.help ? EXIT.ok : EXIT.usage);

  switch (`${command} ${sub ?? ''}`.trim()) {
    case 'start': {
      // Imported here: the roles pull in every store driver, which client commands do not need.
      const { start } = await import('./commands/start.ts');
      await start({ role: values.role });
      return -1; // keeps running until a signal
    }
    case 'me': {
      const me = await api<{
        org: { slug: string };
        token: { name: string };
        permissions: string[];
        servers: string[] | null;
      }>(client, 'GET', '/me');
      print(
        me,
        `@${me.org.slug} · token ${me.token.name} · ${me.permissions.join(', ')}${me.servers ? ` · servers ${me.servers.join(', ')}` : ''}`,
      );
      return EXIT.ok;
    }
    case 'tokens list': {
      const { tokens } = await api<{ tokens: TokenView[] }>(
        client,
        'GET',
        `/tokens${values.all ? '?includeRevoked=true' : ''}`,
      );
      print(
        tokens,
        tokens
          .map(
            (t) =>
              `${t.id}  ${t.prefix}…  ${t.name}  ${t.permissions.join(',')}${t.active ? '' : '  (inactive)'}`,
          )
          .join('\n'),
      );
      return EXIT.ok;
    }
    case 'tokens create': {
      const permissions = (values.permission ?? []) as Permission[];
      const unknown = permissions.filter((p) => !PERMISSIONS.includes(p));
      if (!values.name || permissions.length === 0 || unknown.length > 0) {
        process.stderr.write(
          `pylee: tokens create needs --name and --permission (${PERMISSIONS.join(', ')})${unknown.length ? `; unknown: ${unknown.join(', ')}` : ''}\n`,
        );
        return EXIT.usage;
      }
      const created = await api<TokenView & { token: string }>(client, 'POST', '/tokens', {
        name: values.name,
        permissions,
        ...(values.server ? { servers: values.server } : {}),
        ...(values['expires-at'] ? { expiresAt: values['expires-at'] } : {}),
      });
      print(
        created,
        `created token ${created.name} (${created.id}); it is shown only once:\n${created.token}`,
      );
      return EXIT.ok;
    }
    case 'tokens revoke': {
      if (!arg) return (process.stderr.write('pylee: tokens revoke needs a token id\n'), EXIT.usage);
      const revoked = await api<TokenView>(client, 'DELETE', `/tokens/${encodeURIComponent(arg)}`);
      print(revoked, `revoked token ${revoked.name} (${revoked.id})`);
      return EXIT.ok;
    }
    case 'orgs create': {
      if (!arg) return (process.stderr.write('pylee: orgs create needs a slug\n'), EXIT.usage);
      const created = await api<{ org: { slug: string }; token: string }>(client, 'POST', '/orgs', {
        slug: arg,
        ...(values.name ? { name: values.name } : {}),
      });
      print(
        created,
        `created org @${created.org.slug}; its admin token is shown only once:\n${created.token}`,
      );
      return EXIT.ok;
    }
    case 'audit verify': {
      const { auditVerify, describeReport } = await import('./commands/audit.ts');
      if (client.token && values.org) {
        process.stderr.write(
          "pylee: --org applies without a token; with PYLEE_TOKEN the token's own org is verified\n",
        );
        return EXIT.usage;
      }
      const report = await auditVerify({ client, org: values.org });
      print(report, describeReport(report));
      return report.ok ? EXIT.ok : EXIT.failure;
    }
    default:
      process.stderr.write(`pylee: unknown command "${positionals.join(' ')}"\n\n${USAGE}\n`);
      return EXIT.usage;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`pylee: invalid configuration: ${error.message}\n`);
      process.exit(EXIT.config);
    }
    if (error instanceof StartupError || error instanceof AppError) {
      process.stderr.write(`pylee: ${error.message}${error instanceof AppError ? ` (${error.code})` : ''}\n`);
      process.exit(EXIT.failure);
    }
    if (error instanceof TypeError && 'code' in error && String(error.code).startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`pylee: ${error.message}\n\n${USAGE}\n`);
      process.exit(EXIT.usage);
    }
    process.stderr.write(`pylee: ${(error as Error).stack ?? error}\n`);
    process.exit(EXIT.failure);
  },
);
