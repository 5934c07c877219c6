import { Type, type TSchema } from 'typebox';
import { SLUG_PATTERN } from '#core/slug.ts';

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code' }),
    instance: Type.Optional(Type.String()),
    requestId: Type.String(),
  },
  { additionalProperties: true, $id: 'Problem', description: 'RFC 9457 problem details' },
);

const ref = Type.Ref('Problem');
/** The error responses every authenticated route can give. */
export const problems = { 400: ref, 401: ref, 403: ref, 404: ref, 429: ref } as const;

export const Slug = Type.String({ pattern: SLUG_PATTERN, minLength: 2, maxLength: 64 });
export const Permission = Type.Union([
  Type.Literal('read'),
  Type.Literal('write'),
  Type.Literal('deploy'),
  Type.Literal('connect'),
  Type.Literal('admin'),
]);
export const Timestamp = Type.String({ format: 'date-time' });
/**
 * JSON null, matched by value: with type coercion on, ajv's `{ type: 'null' }` also accepts 0, false
 * and "" and turns them into null (a `threshold: 0` arrived as no threshold).
 */
const JsonNull = Type.Unsafe<null>({ const: null });
// Null first: with type coercion on, ajv would otherwise turn a JSON null into "" or 0 through the other branch.
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([JsonNull, schema]);
export const IdParams = Type.Object({ id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });

export const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  prefix: Type.String({ description: 'First characters of the token, to tell tokens apart' }),
  permissions: Type.Array(Permission),
  servers: Nullable(Type.Array(Type.String())),
  environments: Nullable(Type.Array(Type.String())),
  createdAt: Timestamp,
  createdBy: Nullable(Type.String()),
  expiresAt: Nullable(Timestamp),
  revokedAt: Nullable(Timestamp),
  lastUsedAt: Nullable(Timestamp),
  active: Type.Boolean(),
});

export const Org = Type.Object({
  id: Type.String(),
  slug: Type.String(),
  name: Type.String(),
  createdAt: Timestamp,
});
