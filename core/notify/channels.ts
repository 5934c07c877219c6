import { randomBytes } from 'node:crypto';
import { appendAudit } from '../audit/log.ts';
import type { Context } from '../auth/principal.ts';
import type { SecretBox, Sealed } from '../crypto/secret-box.ts';
import type { Db, Queryable } from '../db/client.ts';
import { BadRequestError, ConflictError, NotFoundError } from '../errors.ts';
import { newId } from '../ids.ts';
import { validateEventGlobs, validateMatchers, type LabelMatcher } from './matchers.ts';
import { assertTargetAllowed, redactUrl, type SsrfPolicy } from './ssrf.ts';

export const CHANNEL_KINDS = ['slack', 'webhook'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];

/** Standard Webhooks secrets: `whsec_` and base64 of 32 random bytes. */
const SECRET_PREFIX = 'whsec_';
/** After a rotation the previous secret keeps signing (a second signature) this long, so receivers can switch. */
export const DEFAULT_PREVIOUS_SECRET_GRACE_S = 24 * 3600;

export interface ChannelView {
  id: string;
  name: string;
  kind: ChannelKind;
  /** Scheme and host only: the full URL is a credential and never leaves the server. */
  target: string;
  /** Tells whether two channels use the same URL without showing it. */
  urlFingerprint: string;
  events: string[];
  matchers: LabelMatcher[];
  /** Webhook channels: which secret signs (1 at creation, +1 per rotation) and until when the previous one also does. */
  signing: { secretVersion: number; previousSecretExpiresAt: string | null } | null;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
}

interface ChannelRow {
  id: string;
  org_id: string;
  name: string;
  kind: ChannelKind;
  url_ciphertext: string;
  url_iv: string;
  url_tag: string;
  url_key_id: string;
  url_host: string;
  url_fingerprint: string;
  secret_ciphertext: string | null;
  secret_iv: string | null;
  secret_tag: string | null;
  secret_key_id: string | null;
  secret_version: number;
  previous_secret_ciphertext: string | null;
  previous_secret_iv: string | null;
  previous_secret_tag: string | null;
  previous_secret_key_id: string | null;
  previous_secret_expires_at: Date | null;
  events: string[];
  matchers: LabelMatcher[];
  created_at: Date;
  created_by: string;
  updated_at: Date;
}

const toView = (row: ChannelRow): ChannelView => ({
  id: row.id,
  name: row.name,
  kind: row.kind,
  target: row.url_host,
  urlFingerprint: row.url_fingerprint,
  events: row.events,
  matchers: row.matchers,
  signing:
    row.kind === 'webhook'
      ? {
          secretVersion: row.secret_version,
          previousSecretExpiresAt:
            row.previous_secret_expires_at && row.previous_secret_expires_at > new Date()
              ? row.previous_secret_expires_at.toISOString()
              : null,
        }
      : null,
  createdAt: row.created_at.toISOString(),
  createdBy: row.created_by,
  updatedAt: row.updated_at.toISOString(),
});

/** What the audit trail keeps of a channel: never the URL or a secret. */
const summary = (v: ChannelView) => ({
  name: v.name,
  kind: v.kind,
  target: v.target,
  urlFingerprint: v.urlFingerprint,
  events: v.events,
  matchers: v.matchers,
});

const urlAad = (id: string) => `notification-channel:${id}:url`;
const secretAad = (id: string, version: number) => `notification-channel:${id}:secret:${version}`;

export interface ChannelInput {
  name: string;
  kind: ChannelKind;
  url: string;
  events?: string[] | undefined;
  matchers?: LabelMatcher[] | undefined;
}

export interface NotifyContextDeps {
  db: Db;
  box: SecretBox;
  policy: SsrfPolicy;
}

function newSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

async function checkedUrl(url: string, policy: SsrfPolicy, kind: ChannelKind): Promise<string> {
  const parsed = await assertTargetAllowed(url, policy);
  if (kind === 'slack' && parsed.protocol !== 'https:' && !policy.allowPrivate) {
    throw new BadRequestError('Slack incoming-webhook URLs must use https', 'webhook-url-refused');
  }
  return parsed.toString();
}

async function findRow(tx: Queryable, ctx: Context, id: string, lock = false): Promise<ChannelRow> {
  const [row] = await tx.query<ChannelRow>(
    `SELECT * FROM notification_channels WHERE id = $1 AND org_id = $2${lock ? ' FOR UPDATE' : ''}`,
    [id, ctx.principal.orgId],
  );
  if (!row) {
    throw new NotFoundError(
      `notification channel ${id} was not found in @${ctx.principal.orgSlug}`,
      'channel-not-found',
    );
  }
  return row;
}

function uniqueName<T>(promise: Promise<T>, name: string): Promise<T> {
  return promise.catch((error: unknown) => {
    if ((error as { code?: string }).code === '23505') {
      throw new ConflictError(
        `a notification channel named "${name}" already exists; pick another name`,
        'channel-exists',
      );
    }
    throw error;
  });
}

/**
 * Creates a channel after checking its URL against the SSRF policy. Webhook channels get a signing
 * secret, returned only here (and by {@link rotateChannelSecret}).
 */
export async function createChannel(
  deps: NotifyContextDeps,
  ctx: Context,
  input: ChannelInput,
): Promise<{ view: ChannelView; secret: string | null }> {
  if (!(CHANNEL_KINDS as readonly string[]).includes(input.kind)) {
    throw new BadRequestError(`kind must be one of ${CHANNEL_KINDS.join(', ')}`);
  }
  const events = validateEventGlobs(input.events ?? ['*']);
  const matchers = validateMatchers(input.matchers ?? []);
  const url = await checkedUrl(input.url, deps.policy, input.kind);
  const id = newId();
  const sealedUrl = deps.box.seal(url, urlAad(id));
  const secret = input.kind === 'webhook' ? newSecret() : null;
  const sealedSecret = secret ? deps.box.seal(secret, secretAad(id, 1)) : null;
  return deps.db.transaction(async (tx) => {
    const [row] = await uniqueName(
      tx.query<ChannelRow>(
        `INSERT INTO notification_channels (id, org_id, name, kind, url_ciphertext, url_iv, url_tag, url_key_id,
           url_host, url_fingerprint, secret_ciphertext, secret_iv, secret_tag, secret_key_id, secret_version,
           events, matchers, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) RETURNING *`,
        [
          id,
          ctx.principal.orgId,
          input.name,
          input.kind,
          sealedUrl.ciphertext,
          sealedUrl.iv,
          sealedUrl.tag,
          sealedUrl.keyId,
          redactUrl(url),
          deps.box.fingerprint(url),
          sealedSecret?.ciphertext ?? null,
          sealedSecret?.iv ?? null,
          sealedSecret?.tag ?? null,
          sealedSecret?.keyId ?? null,
          secret ? 1 : 0,
          events,
          JSON.stringify(matchers),
          ctx.principal.tokenName,
        ],
      ),
      input.name,
    );
    const view = toView(row as ChannelRow);
    await appendAudit(tx, ctx, {
      action: 'channel.create',
      target: { type: 'channel', id, name: view.name },
      after: summary(view),
    });
    return { view, secret };
  });
}

export async function listChannels(db: Queryable, ctx: Context): Promise<ChannelView[]> {
  const rows = await db.query<ChannelRow>(
    'SELECT * FROM notification_channels WHERE org_id = $1 ORDER BY name',
    [ctx.principal.orgId],
  );
  return rows.map(toView);
}

export async function getChannel(db: Queryable, ctx: Context, id: string): Promise<ChannelView> {
  return toView(await findRow(db, ctx, id));
}

export interface ChannelPatch {
  name?: string | undefined;
  url?: string | undefined;
  events?: string[] | undefined;
  matchers?: LabelMatcher[] | undefined;
}

export async function updateChannel(
  deps: NotifyContextDeps,
  ctx: Context,
  id: string,
  patch: ChannelPatch,
): Promise<ChannelView> {
  const events = patch.events === undefined ? undefined : validateEventGlobs(patch.events);
  const matchers = patch.matchers === undefined ? undefined : validateMatchers(patch.matchers);
  return deps.db.transaction(async (tx) => {
    const row = await findRow(tx, ctx, id, true);
    const before = toView(row);
    let sealed: Sealed | undefined;
    let url: string | undefined;
    if (patch.url !== undefined) {
      url = await checkedUrl(patch.url, deps.policy, row.kind);
      sealed = deps.box.seal(url, urlAad(id));
    }
    const [updated] = await uniqueName(
      tx.query<ChannelRow>(
        `UPDATE notification_channels SET
           name = COALESCE($3, name),
           url_ciphertext = COALESCE($4, url_ciphertext), url_iv = COALESCE($5, url_iv),
           url_tag = COALESCE($6, url_tag), url_key_id = COALESCE($7, url_key_id),
           url_host = COALESCE($8, url_host), url_fingerprint = COALESCE($9, url_fingerprint),
           events = COALESCE($10, events), matchers = COALESCE($11, matchers), updated_at = now()
         WHERE id = $1 AND org_id = $2 RETURNING *`,
        [
          id,
          ctx.principal.orgId,
          patch.name ?? null,
          sealed?.ciphertext ?? null,
          sealed?.iv ?? null,
          sealed?.tag ?? null,
          sealed?.keyId ?? null,
          url ? redactUrl(url) : null,
          url ? deps.box.fingerprint(url) : null,
          events ?? null,
          matchers ? JSON.stringify(matchers) : null,
        ],
      ),
      patch.name ?? row.name,
    );
    const view = toView(updated as ChannelRow);
    await appendAudit(tx, ctx, {
      action: 'channel.update',
      target: { type: 'channel', id, name: view.name },
      before: summary(before),
      after: summary(view),
    });
    return view;
  });
}

/** Deletes the channel and, with it, its deliveries (pending ones are no longer sent). */
export async function deleteChannel(db: Db, ctx: Context, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const row = await findRow(tx, ctx, id, true);
    await tx.query('DELETE FROM notification_deliveries WHERE channel_id = $1', [id]);
    await tx.query('DELETE FROM notification_channels WHERE id = $1', [id]);
    await appendAudit(tx, ctx, {
      action: 'channel.delete',
      target: { type: 'channel', id, name: row.name },
      before: summary(toView(row)),
    });
  });
}

/**
 * Replaces a webhook channel's signing secret. The previous one keeps signing alongside it (two
 * signatures in `webhook-signature`) for `previousValidSeconds`, 0 to drop it at once.
 */
export async function rotateChannelSecret(
  deps: Pick<NotifyContextDeps, 'db' | 'box'>,
  ctx: Context,
  id: string,
  previousValidSeconds = DEFAULT_PREVIOUS_SECRET_GRACE_S,
): Promise<{ view: ChannelView; secret: string }> {
  return deps.db.transaction(async (tx) => {
    const row = await findRow(tx, ctx, id, true);
    if (row.kind !== 'webhook') {
      throw new BadRequestError(
        `channel ${row.name} is a ${row.kind} channel; only webhook channels have a signing secret`,
        'channel-has-no-secret',
      );
    }
    const secret = newSecret();
    const version = row.secret_version + 1;
    const sealed = deps.box.seal(secret, secretAad(id, version));
    const keepPrevious = previousValidSeconds > 0;
    const [updated] = await tx.query<ChannelRow>(
      `UPDATE notification_channels SET
         previous_secret_ciphertext = $3, previous_secret_iv = $4, previous_secret_tag = $5,
         previous_secret_key_id = $6,
         previous_secret_expires_at = CASE WHEN $3::text IS NULL THEN NULL ELSE now() + make_interval(secs => $7) END,
         secret_ciphertext = $8, secret_iv = $9, secret_tag = $10, secret_key_id = $11, secret_version = $12,
         updated_at = now()
       WHERE id = $1 AND org_id = $2 RETURNING *`,
      [
        id,
        ctx.principal.orgId,
        keepPrevious ? row.secret_ciphertext : null,
        keepPrevious ? row.secret_iv : null,
        keepPrevious ? row.secret_tag : null,
        keepPrevious ? row.secret_key_id : null,
        previousValidSeconds,
        sealed.ciphertext,
        sealed.iv,
        sealed.tag,
        sealed.keyId,
        version,
      ],
    );
    const view = toView(updated as ChannelRow);
    await appendAudit(tx, ctx, {
      action: 'channel.rotate-secret',
      target: { type: 'channel', id, name: view.name },
      after: {
        secretVersion: version,
        previousSecretExpiresAt: view.signing?.previousSecretExpiresAt ?? null,
      },
    });
    return { view, secret };
  });
}

/** What a delivery needs: the opened URL and the secrets that sign (current first). Never log it. */
export interface ChannelTarget {
  id: string;
  orgId: string;
  name: string;
  kind: ChannelKind;
  url: string;
  urlFingerprint: string;
  secrets: string[];
}

function openSealed(box: SecretBox, ciphertext: string, iv: string, tag: string, keyId: string, aad: string) {
  return box.open({ ciphertext, iv, tag, keyId }, aad);
}

export async function openChannelTarget(
  db: Queryable,
  box: SecretBox,
  id: string,
): Promise<ChannelTarget | undefined> {
  const [row] = await db.query<ChannelRow>('SELECT * FROM notification_channels WHERE id = $1', [id]);
  if (!row) return undefined;
  const url = openSealed(box, row.url_ciphertext, row.url_iv, row.url_tag, row.url_key_id, urlAad(id));
  const secrets: string[] = [];
  if (row.secret_ciphertext && row.secret_iv && row.secret_tag && row.secret_key_id) {
    secrets.push(
      openSealed(
        box,
        row.secret_ciphertext,
        row.secret_iv,
        row.secret_tag,
        row.secret_key_id,
        secretAad(id, row.secret_version),
      ),
    );
  }
  if (
    row.previous_secret_ciphertext &&
    row.previous_secret_iv &&
    row.previous_secret_tag &&
    row.previous_secret_key_id &&
    row.previous_secret_expires_at &&
    row.previous_secret_expires_at > new Date()
  ) {
    secrets.push(
      openSealed(
        box,
        row.previous_secret_ciphertext,
        row.previous_secret_iv,
        row.previous_secret_tag,
        row.previous_secret_key_id,
        secretAad(id, row.secret_version - 1),
      ),
    );
  }
  return {
    id,
    orgId: row.org_id,
    name: row.name,
    kind: row.kind,
    url,
    urlFingerprint: row.url_fingerprint,
    secrets,
  };
}
