#!/usr/bin/env node
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { ConfigError, StartupError, AppError } from '#core/errors.ts';
import { PYLEE_VERSION } from '#core/version.ts';
import {
  clientOptions,
  UsageError,
  type ClientOptions,
  type Command,
  type CommandContext,
  type FlagSpec,
  type FlagValue,
} from './client.ts';
import { alertCommands } from './commands/alerts.ts';
import { canaryCommands } from './commands/canary.ts';
import { channelCommands } from './commands/channels.ts';
import { checkCommands } from './commands/checks.ts';
import { deployCommands } from './commands/deploy.ts';
import { gatewayCommands } from './commands/gateway.ts';
import { inhibitionCommands } from './commands/inhibitions.ts';
import { lineCommands } from './commands/lines.ts';
import { templateCommands } from './commands/templates.ts';
import { packageCommands } from './commands/packages.ts';
import { releaseHealthCommands } from './commands/release-health.ts';
import { retentionCommands } from './commands/retention.ts';
import { loginCommands } from './commands/login.ts';
import { orgCommands } from './commands/orgs.ts';
import { serverCommands } from './commands/servers.ts';
import { tokenCommands } from './commands/tokens.ts';
import { versionCommands } from './commands/versions.ts';
import { vulnerabilityCommands } from './commands/vulnerabilities.ts';

const EXIT = { ok: 0, failure: 1, usage: 2, config: 78 } as const;

const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  url: {
    type: 'string',
    value: 'URL',
    description: 'Pylee API (PYLEE_URL, saved login, http://127.0.0.1:8080)',
  },
  token: { type: 'string', value: 'TOKEN', description: 'API token (PYLEE_TOKEN, saved login)' },
  json: { type: 'boolean', description: 'print JSON for scripts' },
  help: { type: 'boolean', short: 'h', description: 'show help' },
  version: { type: 'boolean', short: 'v', description: 'print the version of pylee' },
};

const COMMANDS: Command[] = [
  {
    name: 'start',
    summary: 'run the platform: collector, API and alerts on the configured stores (npm start)',
    flags: {
      role: { type: 'string', value: 'all|api|collector|alerts', description: 'roles to run (PYLEE_ROLE)' },
    },
    async run(ctx) {
      // Imported here: the roles pull in every store driver, which client commands do not need.
      const { start } = await import('./commands/start.ts');
      await start({ role: ctx.flags.role as string | undefined });
      return -1; // keeps running until a signal
    },
  },
  ...loginCommands,
  ...serverCommands,
  ...versionCommands,
  ...retentionCommands,
  ...lineCommands,
  ...templateCommands,
  ...packageCommands,
  ...vulnerabilityCommands,
  ...deployCommands,
  ...canaryCommands,
  ...gatewayCommands,
  ...releaseHealthCommands,
  ...tokenCommands,
  ...orgCommands,
  ...alertCommands,
  ...inhibitionCommands,
  ...channelCommands,
  ...checkCommands,
  {
    name: 'audit verify',
    summary: 'check the audit hash chain (exit 1 if broken); without a token, reads the store directly',
    flags: {
      org: { type: 'string', value: 'slug', description: 'org to verify without a token (default: default)' },
    },
    async run(ctx) {
      const { auditVerify, describeReport } = await import('./commands/audit.ts');
      const org = ctx.flags.org as string | undefined;
      // With --org the store is read directly, unless a token was given on purpose.
      let client: ClientOptions = ctx.client;
      if (org && client.tokenSource === 'saved') {
        client = { ...client, token: undefined, tokenSource: undefined };
      }
      if (client.token && org) {
        ctx.usage("--org applies without a token; with PYLEE_TOKEN the token's own org is verified");
      }
      const report = await auditVerify({ client, org });
      ctx.print(report, describeReport(report));
      return report.ok ? EXIT.ok : EXIT.failure;
    },
  },
];

function flagUsage(name: string, spec: FlagSpec): string {
  return `--${name}${spec.type === 'string' ? ` ${spec.value ?? 'VALUE'}` : ''}`;
}

/** `servers create <slug> [--name N] [--owner O ...]` */
function synopsis(command: Command): string {
  const flags = Object.entries(command.flags ?? {}).map(([name, spec]) => {
    const text = `${flagUsage(name, spec)}${spec.multiple ? ' ...' : ''}`;
    return spec.required ? text : `[${text}]`;
  });
  return ['pylee', command.name, ...(command.args ?? []), ...flags].join(' ');
}

function flagTable(flags: Record<string, FlagSpec>): string[] {
  const rows = Object.entries(flags).map(([name, spec]) => [
    `${spec.short ? `-${spec.short}, ` : ''}${flagUsage(name, spec)}`,
    spec.description,
  ]);
  const width = Math.max(...rows.map(([f]) => (f ?? '').length));
  return rows.map(([f, d]) => `  ${(f ?? '').padEnd(width)}  ${d}`);
}

const GLOBAL_HELP = `Global flags: --url URL, --token TOKEN (else PYLEE_URL, PYLEE_TOKEN, then the saved login), --json, --help.
Exit codes: 0 ok, 1 failed (the API's message and code on stderr), 2 usage error.`;

function overview(commands: Command[]): string {
  return commands.map((c) => `  ${synopsis(c)}\n      ${c.summary}`).join('\n');
}

const USAGE = `pylee ${PYLEE_VERSION}: version registry and release health for MCP servers

Usage: pylee <command> [arguments] [flags]; pylee <command> --help for its flags

Commands:
${overview(COMMANDS)}

${GLOBAL_HELP}`;

/** A command's synopsis and summary, and its flags one per line. */
function describeCommand(command: Command): string {
  const flags = command.flags ? flagTable(command.flags).map((line) => `\n    ${line}`) : [];
  return `  ${synopsis(command)}\n      ${command.summary}${flags.join('')}`;
}

function groupUsage(group: string, commands: Command[]): string {
  return `Usage: pylee ${group} <command> [arguments] [flags]

${commands.map(describeCommand).join('\n\n')}

${GLOBAL_HELP}`;
}

function commandUsage(command: Command): string {
  return `Usage: ${synopsis(command)}

${command.summary[0]?.toUpperCase()}${command.summary.slice(1)}.
${command.flags ? `\nFlags:\n${flagTable(command.flags).join('\n')}\n` : ''}
${GLOBAL_HELP}`;
}

const toParseArgs = (flags: Record<string, FlagSpec>): ParseArgsOptionsConfig =>
  Object.fromEntries(
    Object.entries(flags).map(([name, spec]) => [
      name,
      {
        type: spec.type,
        ...(spec.multiple ? { multiple: true } : {}),
        ...(spec.short ? { short: spec.short } : {}),
      },
    ]),
  );

const out = (text: string) => process.stdout.write(`${text}\n`);
const err = (text: string) => process.stderr.write(`${text}\n`);

/** The strict parse of a command's flags; a mistake is a {@link UsageError}. */
function parseCommandArgs(argv: string[], command: Command) {
  try {
    return parseArgs({
      args: argv,
      options: toParseArgs({ ...GLOBAL_FLAGS, ...command.flags }),
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    if (!String((error as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) throw error;
    // Node's hint about `--` is noise here: no positional of pylee starts with a dash.
    throw new UsageError((error as Error).message.split('. To specify a positional')[0] as string);
  }
}

/** The command the words select: the longest name that the leading positionals spell. */
function findCommand(words: string[]): Command | undefined {
  return (
    COMMANDS.find((c) => c.name === words.slice(0, 3).join(' ')) ??
    COMMANDS.find((c) => c.name === `${words[0]} ${words[1]}`) ??
    COMMANDS.find((c) => c.name === words[0])
  );
}

async function main(argv: string[]): Promise<number> {
  // A first, lenient pass with every flag any command knows only finds the command words.
  const allFlags = Object.assign({}, ...COMMANDS.map((c) => c.flags ?? {}), GLOBAL_FLAGS) as Record<
    string,
    FlagSpec
  >;
  const first = parseArgs({
    args: argv,
    options: toParseArgs(allFlags),
    allowPositionals: true,
    strict: false,
  });
  const words = first.positionals;
  if (words[0] === 'help') return main([...words.slice(1), '--help']);
  if (first.values.version === true && words.length === 0) return (out(PYLEE_VERSION), EXIT.ok);
  if (words.length === 0) {
    if (first.values.help === true) return (out(USAGE), EXIT.ok);
    return (err(USAGE), EXIT.usage);
  }

  const command = findCommand(words);
  if (!command) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `));
    if (group.length === 0) {
      err(`pylee: unknown command "${words.join(' ')}"\n\n${USAGE}`);
      return EXIT.usage;
    }
    const name = words[0] as string;
    if (words.length === 1 && first.values.help === true) return (out(groupUsage(name, group)), EXIT.ok);
    const problem = words.length === 1 ? `${name} needs a command` : `unknown command "${name} ${words[1]}"`;
    err(`pylee: ${problem}\n\n${groupUsage(name, group)}`);
    return EXIT.usage;
  }
  if (first.values.help === true) return (out(commandUsage(command)), EXIT.ok);

  const usage = (message: string): never => {
    throw new UsageError(message);
  };
  try {
    const parsed = parseCommandArgs(argv, command);
    const flags = parsed.values as Record<string, FlagValue>;
    const positionals = parsed.positionals.slice(command.name.split(' ').length);
    const args = command.args ?? [];
    const required = args.filter((a) => a.startsWith('<')).length;
    if (positionals.length < required) {
      usage(`${command.name} needs ${args.slice(positionals.length, required).join(' ')}`);
    }
    if (positionals.length > args.length) usage(`unexpected argument "${positionals[args.length]}"`);
    for (const [name, spec] of Object.entries(command.flags ?? {})) {
      if (spec.required && flags[name] === undefined) usage(`${command.name} needs ${flagUsage(name, spec)}`);
    }

    const json = flags.json === true;
    let client: ClientOptions | undefined;
    const ctx: CommandContext = {
      positionals,
      flags,
      get client() {
        client ??= clientOptions({
          url: flags.url as string | undefined,
          token: flags.token as string | undefined,
        });
        return client;
      },
      json,
      print: (value, text) => out(json ? JSON.stringify(value, null, 2) : text),
      warn: (message) => err(`pylee: ${message}`),
      usage,
    };
    return (await command.run(ctx)) ?? EXIT.ok;
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    err(`pylee: ${error.message}\n\n${commandUsage(command)}`);
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
    process.stderr.write(`pylee: ${(error as Error).stack ?? error}\n`);
    process.exit(EXIT.failure);
  },
);
