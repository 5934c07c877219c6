import readline from 'node:readline';
import {
  api,
  credentialsPath,
  DEFAULT_URL,
  loadCredentials,
  removeCredentials,
  saveCredentials,
  type Command,
} from '../client.ts';

interface Me {
  org: { id: string; slug: string };
  token: { id: string | null; name: string };
  permissions: string[];
  servers: string[] | null;
  environments: string[] | null;
}

/** The first line of a piped stdin, trimmed; empty at once on end of input. */
async function firstLine(input: NodeJS.ReadStream): Promise<string> {
  const lines = readline.createInterface({ input, crlfDelay: Infinity, terminal: false });
  try {
    for await (const line of lines) return line.trim();
    return '';
  } finally {
    lines.close();
    input.destroy();
  }
}

const describeMe = (me: Me) =>
  [
    `@${me.org.slug}`,
    `token ${me.token.name}`,
    me.permissions.join(', '),
    ...(me.servers ? [`servers ${me.servers.join(', ')}`] : []),
    ...(me.environments ? [`environments ${me.environments.join(', ')}`] : []),
  ].join(' · ');

export const loginCommands: Command[] = [
  {
    name: 'login',
    summary: 'check an API token and save it for later commands (token from --token, PYLEE_TOKEN or stdin)',
    flags: {
      url: {
        type: 'string',
        value: 'URL',
        description: 'Pylee API (default: PYLEE_URL, the saved login, http://127.0.0.1:8080)',
      },
      token: {
        type: 'string',
        value: 'TOKEN',
        description: 'API token (default: PYLEE_TOKEN, else one line of stdin)',
      },
    },
    async run(ctx) {
      const flags = ctx.flags as { url?: string; token?: string };
      const url = (flags.url ?? process.env.PYLEE_URL ?? savedUrl() ?? DEFAULT_URL).replace(/\/+$/, '');
      // From stdin, so CI can log in without the token in the process list: echo "$T" | pylee login
      let token = flags.token ?? process.env.PYLEE_TOKEN;
      if (token === undefined && !process.stdin.isTTY) token = await firstLine(process.stdin);
      if (!token) {
        return ctx.usage(
          'login needs a token: pipe it on stdin (echo "$PYLEE_TOKEN" | pylee login), set PYLEE_TOKEN or pass --token',
        );
      }
      const me = await api<Me>({ url, token, tokenSource: 'flag' }, 'GET', '/me');
      const file = credentialsPath();
      saveCredentials({ url, token }, file);
      ctx.print(
        {
          url,
          org: me.org,
          token: me.token,
          permissions: me.permissions,
          servers: me.servers,
          credentials: file,
        },
        `logged in to ${url} as ${me.token.name} in @${me.org.slug} (${me.permissions.join(', ')})`,
      );
    },
  },
  {
    name: 'logout',
    summary: 'forget the saved login',
    async run(ctx) {
      const file = credentialsPath();
      const url = savedUrl();
      const removed = removeCredentials(file);
      ctx.print(
        { loggedOut: removed, url: url ?? null, credentials: file },
        removed ? `logged out of ${url}; removed ${file}` : `not logged in (no ${file})`,
      );
    },
  },
  {
    name: 'me',
    summary: 'show the org, token and permissions in use',
    async run(ctx) {
      const me = await api<Me>(ctx.client, 'GET', '/me');
      ctx.print(me, describeMe(me));
    },
  },
];

/** The URL of the saved login; a broken credentials file does not stop login or logout. */
function savedUrl(): string | undefined {
  try {
    return loadCredentials()?.url;
  } catch {
    return undefined;
  }
}
