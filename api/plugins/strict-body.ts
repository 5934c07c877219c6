import type { FastifyInstance, FastifyRequest, preValidationHookHandler, RouteOptions } from 'fastify';
import { Type } from 'typebox';

/** The body of an action that takes none (archive, rotate-secret, run, evaluate…): nothing, or `{}`. */
export const NoBody = Type.Object(
  {},
  { additionalProperties: false, description: 'No body, or an empty JSON object' },
);

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const noBodyIsEmpty = async (req: FastifyRequest) => {
  req.body ??= {};
};

/**
 * Gives every route that may carry a body but declares no body schema the strict empty one, so an
 * action route answers `{"unexpected":1}` with 400 and does nothing, as every route with a body
 * schema does, instead of acting and ignoring it. A request without a body (no content-type) is
 * validated as `{}`, as before. Install before any route is added: it applies to routes added later,
 * in this instance and its plugins, including routes added in the future.
 */
export function installStrictBodies(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.some((method) => BODY_METHODS.has(method.toUpperCase()))) return;
    if (route.schema?.body !== undefined) return;
    route.schema = { ...route.schema, body: NoBody };
    const existing = route.preValidation;
    const hooks: preValidationHookHandler[] =
      existing === undefined ? [] : Array.isArray(existing) ? existing : [existing];
    route.preValidation = [noBodyIsEmpty, ...hooks];
  });
}
