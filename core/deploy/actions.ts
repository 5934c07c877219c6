/** What a person does to a deployment: promote, pause, resume, abort or roll back (rollback.ts). */
import { assertEnvironmentAccess, type Context, type Principal } from '../auth/principal.ts';
import type { Queryable } from '../db/client.ts';
import { ConflictError, NotFoundError } from '../errors.ts';
import { findServer } from '../registry/servers.ts';
import { applyEvent, stageReady } from './apply.ts';
import { withOutbox } from './outbox.ts';
import { loadRow, toView, type DeployDeps, type DeploymentView } from './records.ts';
import { rollbackDeployment } from './rollback.ts';
import { isActive, type RolloutEvent, type UserAction } from './rollout.ts';

async function lockedDeployment(tx: Queryable, principal: Principal, serverSlug: string, id: string) {
  const server = await findServer(tx, principal, serverSlug, { forUpdate: true });
  const row = /^[0-9a-f-]{36}$/i.test(id) ? await loadRow(tx, id, true) : undefined;
  if (!row || row.server_id !== server.id) {
    throw new NotFoundError(`deployment ${id} of server ${serverSlug} was not found`, 'deployment-not-found');
  }
  return { server, row };
}

export interface ActionInput {
  reason?: string | undefined;
  /** promote: all the way to 100 %. */
  full?: boolean | undefined;
}

/** promote | pause | resume | abort | rollback, by a person (deploy permission, environment access). */
export function actOnDeployment(
  deps: DeployDeps,
  ctx: Context,
  serverSlug: string,
  id: string,
  action: UserAction,
  input: ActionInput = {},
): Promise<DeploymentView> {
  return withOutbox(deps, async (tx, outbox) => {
    const { row } = await lockedDeployment(tx, ctx.principal, serverSlug, id);
    assertEnvironmentAccess(ctx.principal, row.current_environment);
    if (action === 'rollback') return toView(await rollbackDeployment(tx, outbox, ctx, row, input.reason));
    if (
      action === 'promote' &&
      row.strategy === 'staged' &&
      isActive(row.status) &&
      row.status !== 'verifying' &&
      row.status !== 'pending'
    ) {
      const last = input.full ? row.steps.length - 1 : row.current_step + 1;
      for (let i = row.current_step + 1; i <= last && i < row.steps.length; i++) {
        assertEnvironmentAccess(ctx.principal, row.steps[i]?.environment as string);
        const ready = await stageReady(tx, row, i, ctx.principal);
        if (!ready.ok) {
          throw new ConflictError(
            `cannot promote to ${row.steps[i]?.environment}: ${ready.detail}`,
            ready.code,
            {
              gate: ready.gate,
            },
          );
        }
      }
    }
    const event: RolloutEvent =
      action === 'promote'
        ? { type: 'promote', full: input.full === true }
        : ({ type: action } as RolloutEvent);
    return toView(
      await applyEvent(tx, outbox, row, event, { ctx, action: `deployment.${action}`, reason: input.reason }),
    );
  });
}
