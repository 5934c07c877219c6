import { api, table, type Command } from '../client.ts';

interface LineView {
  pattern: string;
  endOfSupport: string | null;
  supported: boolean;
  description: string;
  latest: string | null;
  newest: string | null;
  versions: number;
}

const linesPath = (server: string, pattern?: string) =>
  `/servers/${encodeURIComponent(server)}/lines${pattern ? `/${encodeURIComponent(pattern)}` : ''}`;

export const lineCommands: Command[] = [
  {
    name: 'lines list',
    args: ['<server>'],
    summary: 'maintenance lines, newest first, with their support state',
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const { lines } = await api<{ lines: LineView[] }>(ctx.client, 'GET', linesPath(server));
      ctx.print(
        lines,
        lines.length === 0
          ? `${server} declares no maintenance lines`
          : table(
              ['LINE', 'SUPPORT', 'LATEST', 'VERSIONS', 'DESCRIPTION'],
              lines.map((l) => [
                l.pattern,
                l.supported
                  ? l.endOfSupport
                    ? `until ${l.endOfSupport}`
                    : 'supported'
                  : `ended ${l.endOfSupport}`,
                l.latest ?? '—',
                String(l.versions),
                l.description,
              ]),
            ),
      );
    },
  },
  {
    name: 'lines set',
    args: ['<server>', '<line>'],
    summary: 'declare a maintenance line (1.4.x, 2.x) or change its end of support',
    flags: {
      'end-of-support': { type: 'string', value: 'YYYY-MM-DD', description: 'last day of support' },
      description: { type: 'string', value: 'TEXT', description: 'what the line is for' },
    },
    async run(ctx) {
      const [server, pattern] = ctx.positionals as [string, string];
      const line = await api<LineView>(ctx.client, 'PUT', linesPath(server, pattern), {
        endOfSupport: ctx.flags['end-of-support'] as string | undefined,
        description: ctx.flags.description as string | undefined,
      });
      ctx.print(
        line,
        `${server} line ${line.pattern}: ${line.supported ? 'supported' : 'past its end of support'}`,
      );
    },
  },
  {
    name: 'lines delete',
    args: ['<server>', '<line>'],
    summary: 'remove a maintenance line (its versions stay)',
    async run(ctx) {
      const [server, pattern] = ctx.positionals as [string, string];
      await api(ctx.client, 'DELETE', linesPath(server, pattern));
      ctx.print({ deleted: pattern }, `removed line ${pattern} of ${server}`);
    },
  },
];
