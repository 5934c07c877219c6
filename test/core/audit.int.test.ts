import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { hashEvent } from '#core/audit/chain.ts';
import {
  appendAudit,
  listAudit,
  toChained,
  verifyAuditChain,
  type AuditEvent,
  type AuditRow,
} from '#core/audit/log.ts';
import type { Context, Principal } from '#core/auth/principal.ts';
import { createToken } from '#core/auth/tokens.ts';
import type { Db } from '#core/db/client.ts';
import { migrateDb } from '#core/db/migrate.ts';
import { BadRequestError } from '#core/errors.ts';
import { bootstrap, createOrg, systemPrincipal, type Org } from '#core/orgs.ts';
import { DB_DRIVERS } from '#test/helpers/drivers.ts';

/** The fields the chain hashes, read straight from a row (as a forger with database access would). */
const chained = toChained;

function uniqueSlug(label: string): string {
  return `${label}-${randomBytes(4).toString('hex')}`;
}

function tokenPrincipal(org: Org, name: string): Principal {
  return {
    orgId: org.id,
    orgSlug: org.slug,
    tokenId: randomUUID(),
    tokenName: name,
    permissions: ['admin'],
    servers: null,
  };
}

describe.each(DB_DRIVERS)('audit trail on $name', (driver) => {
  let db: Db;
  let cleanup: () => Promise<void>;
  let defaultOrg: Org;
  let instanceAdmin: Context;

  beforeAll(async () => {
    ({ db, cleanup } = await driver.open());
    await migrateDb(db);
    ({ org: defaultOrg } = await bootstrap(db));
    instanceAdmin = { principal: systemPrincipal(defaultOrg) };
  });

  afterAll(async () => {
    await cleanup?.();
  });

  /** A fresh org (its own chain: org.create + its admin token) with `tokens` more token.create events. */
  async function orgWithEvents(tokens: number): Promise<{ org: Org; ctx: Context; events: number }> {
    const { org } = await createOrg(db, instanceAdmin, { slug: uniqueSlug('audit') });
    const ctx: Context = { principal: systemPrincipal(org) };
    for (let i = 0; i < tokens; i++)
      await createToken(db, ctx, { name: `token-${i}`, permissions: ['read'] });
    return { org, ctx, events: 2 + tokens };
  }

  async function rows(orgId: string): Promise<AuditRow[]> {
    return db.query<AuditRow>('SELECT * FROM audit_events WHERE org_id = $1 ORDER BY seq', [orgId]);
  }

  async function head(orgId: string) {
    const [row] = await db.query<{ seq: number; hash: string }>(
      'SELECT seq, hash FROM audit_heads WHERE org_id = $1',
      [orgId],
    );
    return row;
  }

  /** Changes stored events the way only someone with direct database access could. */
  async function tamper(sql: string, params: unknown[]): Promise<void> {
    await db.transaction(async (tx) => {
      await tx.exec('ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update');
      await tx.query(sql, params);
      await tx.exec('ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update');
    });
  }

  describe('bootstrap and appending', () => {
    it('creates org default with a verified trail on first start', async () => {
      const { events } = await listAudit(db, defaultOrg.id);

      expect(defaultOrg.slug).toBe('default');
      expect(events.map((e) => e.action).sort()).toEqual(
        expect.arrayContaining(['org.create', 'token.create']),
      );
      expect(events.find((e) => e.action === 'org.create')?.actor).toEqual({
        type: 'system',
        id: null,
        name: 'pylee',
      });
      expect((await verifyAuditChain(db, defaultOrg.id)).ok).toBe(true);
    });

    it('leaves no event and an unchanged head when the transaction appending it throws', async () => {
      const { org, ctx, events } = await orgWithEvents(1);
      const headBefore = await head(org.id);

      await expect(
        db.transaction(async (tx) => {
          await appendAudit(tx, ctx, {
            action: 'server.create',
            target: { type: 'server', name: 'weather' },
          });
          throw new Error('the change failed after its event was appended');
        }),
      ).rejects.toThrow('the change failed');

      expect(await rows(org.id)).toHaveLength(events);
      expect(await head(org.id)).toEqual(headBefore);
      expect((await listAudit(db, org.id, { action: 'server.create' })).events).toEqual([]);
    });

    it('refuses to update or delete a stored event', async () => {
      const { org } = await orgWithEvents(0);

      await expect(
        db.query("UPDATE audit_events SET actor_name = 'mallory' WHERE org_id = $1", [org.id]),
      ).rejects.toThrow(/append-only/);
      await expect(db.query('DELETE FROM audit_events WHERE org_id = $1', [org.id])).rejects.toThrow(
        /append-only/,
      );
      expect((await rows(org.id)).map((r) => r.actor_name)).toEqual(['pylee', 'pylee']);
    });

    it('keeps a valid chain with contiguous sequence numbers under 20 concurrent appends', async () => {
      const { org, ctx, events } = await orgWithEvents(0);

      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          createToken(db, ctx, { name: `parallel-${i}`, permissions: ['read'] }),
        ),
      );

      const stored = await rows(org.id);
      expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: events + 20 }, (_, i) => i + 1));
      expect(await head(org.id)).toEqual({ seq: events + 20, hash: stored.at(-1)?.hash });
      expect(await verifyAuditChain(db, org.id)).toEqual({ ok: true, checked: events + 20, firstBad: null });
    });

    it('never stores secret values in before or after, at any depth', async () => {
      const { org, ctx } = await orgWithEvents(0);

      await db.transaction((tx) =>
        appendAudit(tx, ctx, {
          action: 'probe.secrets',
          target: { type: 'probe' },
          before: { password: 'old-pass', list: [{ privateKey: 'pk' }] },
          after: { name: 'x', secret: 'hunter2', nested: { apiToken: 'abc' }, empty: null },
        }),
      );

      const [event] = (await listAudit(db, org.id, { action: 'probe.secrets' })).events;
      expect(event?.after).toEqual({
        name: 'x',
        secret: '[redacted]',
        nested: { apiToken: '[redacted]' },
        empty: null,
      });
      expect(event?.before).toEqual({ password: '[redacted]', list: [{ privateKey: '[redacted]' }] });
      const [raw] = await db.query<{ text: string }>(
        'SELECT before::text || after::text AS text FROM audit_events WHERE id = $1',
        [event?.id],
      );
      for (const secret of ['hunter2', '"abc"', 'old-pass', '"pk"']) expect(raw?.text).not.toContain(secret);
      expect((await verifyAuditChain(db, org.id)).ok).toBe(true);
    });
  });

  describe('verifying the chain', () => {
    it('reports an untouched chain as valid and counts its events', async () => {
      const { org, events } = await orgWithEvents(4);

      expect(await verifyAuditChain(db, org.id)).toEqual({ ok: true, checked: events, firstBad: null });
      // Across pages, too.
      expect(await verifyAuditChain(db, org.id, 2)).toEqual({ ok: true, checked: events, firstBad: null });
    });

    it('reports an org without events as valid', async () => {
      expect(await verifyAuditChain(db, randomUUID())).toEqual({ ok: true, checked: 0, firstBad: null });
    });

    it('names the event whose contents were changed', async () => {
      const { org } = await orgWithEvents(4);
      const target = (await rows(org.id))[3] as AuditRow;

      await tamper("UPDATE audit_events SET actor_name = 'mallory' WHERE id = $1", [target.id]);

      const report = await verifyAuditChain(db, org.id);
      expect(report.ok).toBe(false);
      expect(report.checked).toBe(3);
      expect(report.firstBad).toMatchObject({ seq: 4, id: target.id });
      expect(report.firstBad?.reason).toMatch(/do not match its hash/);
    });

    it('finds a changed event on a later page', async () => {
      const { org } = await orgWithEvents(5);
      const target = (await rows(org.id))[5] as AuditRow;

      await tamper('UPDATE audit_events SET after = \'{"name":"renamed"}\' WHERE id = $1', [target.id]);

      expect((await verifyAuditChain(db, org.id, 2)).firstBad).toMatchObject({ seq: 6, id: target.id });
    });

    it('reports a deleted event as missing', async () => {
      const { org } = await orgWithEvents(4);

      await tamper('DELETE FROM audit_events WHERE org_id = $1 AND seq = 3', [org.id]);

      const report = await verifyAuditChain(db, org.id);
      expect(report.ok).toBe(false);
      expect(report.firstBad).toMatchObject({ seq: 3, id: null });
      expect(report.firstBad?.reason).toMatch(/event 3 is missing/);
    });

    it('reports deleted newest events through the chain head', async () => {
      const { org, events } = await orgWithEvents(4);

      await tamper('DELETE FROM audit_events WHERE org_id = $1 AND seq > $2', [org.id, events - 2]);

      const report = await verifyAuditChain(db, org.id);
      expect(report).toMatchObject({ ok: false, checked: events - 2 });
      expect(report.firstBad).toMatchObject({ seq: events - 1, id: null });
      expect(report.firstBad?.reason).toMatch(`events ${events - 1}..${events} are missing`);
    });

    it('detects an event rewritten with a recomputed hash at the event after it', async () => {
      const { org } = await orgWithEvents(4);
      const target = (await rows(org.id))[2] as AuditRow;
      expect(hashEvent(chained(target))).toBe(target.hash);
      const forged = { ...chained(target), after: { name: 'forged', permissions: ['admin'] } };

      await tamper('UPDATE audit_events SET after = $2, hash = $3 WHERE id = $1', [
        target.id,
        JSON.stringify(forged.after),
        hashEvent(forged),
      ]);

      const report = await verifyAuditChain(db, org.id);
      expect(report.ok).toBe(false);
      expect(report.firstBad).toMatchObject({ seq: 4 });
      expect(report.firstBad?.reason).toMatch(/previous-hash/);
    });

    it('detects the newest event rewritten with a recomputed hash through the chain head', async () => {
      const { org, events } = await orgWithEvents(2);
      const target = (await rows(org.id)).at(-1) as AuditRow;
      const forged = { ...chained(target), actorName: 'someone-else' };

      await tamper('UPDATE audit_events SET actor_name = $2, hash = $3 WHERE id = $1', [
        target.id,
        forged.actorName,
        hashEvent(forged),
      ]);

      const report = await verifyAuditChain(db, org.id);
      expect(report).toEqual({
        ok: false,
        checked: events - 1,
        firstBad: {
          seq: events,
          id: target.id,
          reason: expect.stringContaining('does not match the chain head'),
        },
      });
    });
  });

  describe('listing', () => {
    const alice = 'alice';
    const bob = 'bob';
    let org: Org;
    let all: AuditEvent[];
    let aliceId: string;

    beforeAll(async () => {
      // A fixed clock (Date only; timers stay real) gives since/until exact boundaries.
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(new Date('2026-01-10T11:00:00Z'));
      ({ org } = await orgWithEvents(0));
      const asAlice: Context = { principal: tokenPrincipal(org, alice) };
      const asBob: Context = {
        principal: tokenPrincipal(org, bob),
        requestId: 'req-1',
        clientAddress: '10.0.0.7',
      };
      aliceId = asAlice.principal.tokenId as string;
      const entries: [Context, string, { type: string; id?: string; name?: string }][] = [
        [asAlice, 'token.create', { type: 'token', id: 't-1', name: 'ci' }],
        [asBob, 'server.create', { type: 'server', name: 'weather' }],
        [asAlice, 'token.revoke', { type: 'token', id: 't-1', name: 'ci' }],
        [asBob, 'tokens.export', { type: 'export', name: 'all-tokens' }],
        [asAlice, 'server.update', { type: 'server', name: 'weather' }],
        [asBob, 'token.create', { type: 'token', id: 't-2', name: 'deploy-bot' }],
      ];
      for (const [i, [ctx, action, target]] of entries.entries()) {
        vi.setSystemTime(new Date(Date.UTC(2026, 0, 10, 12, i)));
        await db.transaction((tx) => appendAudit(tx, ctx, { action, target }));
      }
      vi.useRealTimers();
      all = (await listAudit(db, org.id, { limit: 500 })).events;
    });

    afterEach(() => {
      vi.useRealTimers();
    });

    const seqsOf = (events: AuditEvent[]) => events.map((e) => e.seq);

    it('lists newest first with actor, target and request metadata', async () => {
      expect(seqsOf(all)).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
      expect(all[0]).toMatchObject({
        action: 'token.create',
        at: '2026-01-10T12:05:00.000Z',
        actor: { type: 'token', name: bob },
        target: { type: 'token', id: 't-2', name: 'deploy-bot' },
        requestId: 'req-1',
        clientAddress: '10.0.0.7',
        before: null,
        after: null,
      });
    });

    it('filters by actor name or actor id', async () => {
      const byName = await listAudit(db, org.id, { actor: alice });
      const byId = await listAudit(db, org.id, { actor: aliceId });

      expect(byName.events.map((e) => e.action)).toEqual(['server.update', 'token.revoke', 'token.create']);
      expect(seqsOf(byId.events)).toEqual(seqsOf(byName.events));
      expect((await listAudit(db, org.id, { actor: 'nobody' })).events).toEqual([]);
    });

    it('filters by exact action and by an action prefix ending in .*', async () => {
      const exact = await listAudit(db, org.id, { action: 'token.create' });
      const prefix = await listAudit(db, org.id, { action: 'token.*' });

      // Exactly token.create: the bootstrap token of the org, and the two appended here.
      expect(exact.events.map((e) => e.target.name)).toEqual(['deploy-bot', 'ci', 'admin']);
      expect(prefix.events.map((e) => e.action)).toEqual([
        'token.create',
        'token.revoke',
        'token.create',
        'token.create',
      ]);
      // `token.*` is a prefix up to the dot: tokens.export is another action.
      expect(prefix.events.map((e) => e.action)).not.toContain('tokens.export');
      expect((await listAudit(db, org.id, { action: 'token' })).events).toEqual([]);
    });

    it('filters by target type, id or name', async () => {
      expect(seqsOf((await listAudit(db, org.id, { target: 'server' })).events)).toEqual([7, 4]);
      expect(seqsOf((await listAudit(db, org.id, { target: 't-1' })).events)).toEqual([5, 3]);
      expect(seqsOf((await listAudit(db, org.id, { target: 'weather' })).events)).toEqual([7, 4]);
    });

    it('filters by time, since inclusive and until exclusive', async () => {
      const window = await listAudit(db, org.id, {
        since: '2026-01-10T12:01:00Z',
        until: '2026-01-10T12:04:00Z',
      });
      const sinceOffset = await listAudit(db, org.id, { since: '2026-01-10T13:04:00+01:00' });

      expect(window.events.map((e) => e.at)).toEqual([
        '2026-01-10T12:03:00.000Z',
        '2026-01-10T12:02:00.000Z',
        '2026-01-10T12:01:00.000Z',
      ]);
      expect(seqsOf(sinceOffset.events)).toEqual([8, 7]);
    });

    it('combines filters', async () => {
      const result = await listAudit(db, org.id, { actor: bob, action: 'token.*' });

      expect(result.events.map((e) => e.target.name)).toEqual(['deploy-bot']);
    });

    it('pages with the before cursor without duplicates or gaps', async () => {
      const pages: number[][] = [];
      let cursor: string | null = null;
      do {
        const page: { events: AuditEvent[]; nextCursor: string | null } = await listAudit(db, org.id, {
          limit: 3,
          before: cursor === null ? undefined : Number(cursor),
        });
        pages.push(seqsOf(page.events));
        cursor = page.nextCursor;
      } while (cursor !== null);

      expect(pages).toEqual([
        [8, 7, 6],
        [5, 4, 3],
        [2, 1],
      ]);
    });

    it('pages a filtered listing', async () => {
      const first = await listAudit(db, org.id, { action: 'token.*', limit: 2 });
      const second = await listAudit(db, org.id, {
        action: 'token.*',
        limit: 2,
        before: Number(first.nextCursor),
      });

      expect(seqsOf(first.events)).toEqual([8, 5]);
      expect(first.nextCursor).toBe('5');
      expect(seqsOf(second.events)).toEqual([3, 2]);
      expect(second.nextCursor).toBeNull();
    });

    it('gives no cursor when everything fits on one page', async () => {
      const result = await listAudit(db, org.id, { limit: 8 });

      expect(result.events).toHaveLength(8);
      expect(result.nextCursor).toBeNull();
    });

    it('rejects a since or until that is not a time', async () => {
      for (const filter of [{ since: 'yesterday-ish' }, { until: 'not a time' }]) {
        const error: unknown = await listAudit(db, org.id, filter).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(BadRequestError);
        expect(error).toMatchObject({ code: 'invalid-time', status: 400 });
      }
    });

    it('never lists events of another org', async () => {
      const other = await orgWithEvents(0);
      await db.transaction((tx) =>
        appendAudit(tx, other.ctx, { action: 'probe.isolation', target: { type: 'probe', name: 'weather' } }),
      );
      const otherIds = new Set((await rows(other.org.id)).map((r) => r.id));

      const mine = await listAudit(db, org.id, { limit: 500 });
      const mineByTarget = await listAudit(db, org.id, { target: 'weather' });

      expect(mine.events.filter((e) => otherIds.has(e.id))).toEqual([]);
      expect(mineByTarget.events.filter((e) => otherIds.has(e.id))).toEqual([]);
      expect((await listAudit(db, org.id, { action: 'probe.isolation' })).events).toEqual([]);
      expect((await listAudit(db, other.org.id, { action: 'probe.isolation' })).events).toHaveLength(1);
    });
  });
});
