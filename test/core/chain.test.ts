import { describe, expect, it } from 'vitest';
import { canonicalJson, checkChain, GENESIS_HASH, hashEvent, type ChainedEvent } from '#core/audit/chain.ts';
import { redactSummary } from '#core/audit/log.ts';

function chain(n: number): (ChainedEvent & { hash: string })[] {
  const events: (ChainedEvent & { hash: string })[] = [];
  let prevHash = GENESIS_HASH;
  for (let seq = 1; seq <= n; seq++) {
    const event: ChainedEvent = {
      id: `id-${seq}`,
      orgId: 'org',
      seq,
      at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
      actorType: 'token',
      actorId: 't1',
      actorName: 'ci',
      action: 'token.create',
      targetType: 'token',
      targetId: `t${seq}`,
      targetName: null,
      before: null,
      after: { name: `t${seq}`, permissions: ['read'] },
      requestId: null,
      clientAddress: '127.0.0.1',
      prevHash,
    };
    const hash = hashEvent(event);
    events.push({ ...event, hash });
    prevHash = hash;
  }
  return events;
}

describe('audit hash chain', () => {
  it('hashes canonically: key order does not change the hash', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[1,{"x":1,"y":2}]},"b":1}',
    );
    const [event] = chain(1);
    const { hash, ...body } = event as ChainedEvent & { hash: string };
    const reordered = Object.fromEntries(Object.entries(body).reverse()) as unknown as ChainedEvent;
    expect(hashEvent(reordered)).toBe(hash);
  });

  it('accepts an intact chain', () => {
    const events = chain(5);
    expect(checkChain(events, { seq: 0, hash: GENESIS_HASH })).toEqual({ seq: 5, hash: events[4]?.hash });
  });

  it('names the first event whose contents changed', () => {
    const events = chain(5);
    (events[2] as ChainedEvent).action = 'token.revoke';
    expect(checkChain(events, { seq: 0, hash: GENESIS_HASH })).toMatchObject({
      break: { seq: 3, id: 'id-3' },
    });
  });

  it('catches a rewritten event whose hash was recomputed, at the next event', () => {
    const events = chain(5);
    const { hash: _old, ...original } = events[1] as ChainedEvent & { hash: string };
    const forged: ChainedEvent = { ...original, actorName: 'someone-else' };
    events[1] = { ...forged, hash: hashEvent(forged) };
    const result = checkChain(events, { seq: 0, hash: GENESIS_HASH });
    expect(result).toMatchObject({ break: { seq: 3, reason: expect.stringContaining('previous-hash') } });
  });

  it('catches a deleted event', () => {
    const events = chain(5);
    events.splice(1, 1);
    expect(checkChain(events, { seq: 0, hash: GENESIS_HASH })).toMatchObject({ break: { seq: 2, id: null } });
  });

  it('never keeps secret values in summaries', () => {
    expect(
      redactSummary({
        name: 'x',
        secret: 's3cret',
        nested: { apiToken: 't', password: 'p', other: 1 },
        list: [{ key: 'k' }],
        token: null,
      }),
    ).toEqual({
      name: 'x',
      secret: '[redacted]',
      nested: { apiToken: '[redacted]', password: '[redacted]', other: 1 },
      list: [{ key: '[redacted]' }],
      token: null,
    });
  });
});
