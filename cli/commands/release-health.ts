import type { ReleaseHealthJson } from '#api/routes/release-health.ts';
import { api, segment, type Command } from '../client.ts';

const percent = (value: number | null, digits = 1) =>
  value === null ? '—' : `${(value * 100).toFixed(digits)} %`;
/** The change against the average, in percentage points, as Sentry shows it beside each release. */
const delta = (value: number | null, average: number | null) =>
  value === null || average === null
    ? ''
    : ` (${value >= average ? '+' : ''}${((value - average) * 100).toFixed(1)} pp)`;

export const releaseHealthCommands: Command[] = [
  {
    name: 'release-health',
    args: ['<server>'],
    summary: "each version's sessions, crash-free sessions and users, and adoption in an environment (read)",
    flags: {
      env: { type: 'string', value: 'E', required: true, description: 'environment, e.g. production' },
      window: { type: 'string', value: 'W', description: 'how far back, e.g. 24h (default), 7d' },
    },
    async run(ctx) {
      const [server] = ctx.positionals as [string];
      const query = new URLSearchParams({ environment: ctx.flags.env as string });
      if (typeof ctx.flags.window === 'string') query.set('window', ctx.flags.window);
      const health = await api<ReleaseHealthJson>(
        ctx.client,
        'GET',
        `/servers/${segment(server)}/release-health?${query.toString()}`,
      );
      const { average } = health;
      const rows = health.versions.map((v) =>
        [
          v.version.padEnd(14),
          v.stage.padEnd(13),
          `${percent(v.adoption.sessions, 0)} of sessions`.padEnd(18),
          `crash-free sessions ${percent(v.crashFreeSessions)}${delta(v.crashFreeSessions, average.crashFreeSessions)}`.padEnd(
            40,
          ),
          `users ${percent(v.crashFreeUsers)}${delta(v.crashFreeUsers, average.crashFreeUsers)}`.padEnd(28),
          `${v.sessions.total} sessions (${v.sessions.crashed} crashed, ${v.sessions.errored} errored, ${v.sessions.active} active)`,
        ].join(' '),
      );
      ctx.print(
        health,
        [
          `${health.server} in ${health.environment}, ${health.window.from} → ${health.window.to}`,
          `average of its versions: crash-free sessions ${percent(average.crashFreeSessions)}, users ${percent(average.crashFreeUsers)}`,
          '',
          ...(rows.length > 0 ? rows : ['no sessions in this window']),
        ].join('\n'),
      );
    },
  },
];
