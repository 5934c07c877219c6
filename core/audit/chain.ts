import { createHash } from 'node:crypto';

export const GENESIS_HASH = '0'.repeat(64);

/** The fields an audit event's hash covers: everything but the hash itself. */
export interface ChainedEvent {
  id: string;
  orgId: string;
  seq: number;
  at: string;
  actorType: string;
  actorId: string | null;
  actorName: string;
  action: string;
  targetType: string;
  targetId: string | null;
  targetName: string | null;
  before: unknown;
  after: unknown;
  requestId: string | null;
  clientAddress: string | null;
  prevHash: string;
}

/** SHA-256 over a canonical JSON form (sorted keys), so jsonb's key reordering does not matter. */
export function hashEvent(event: ChainedEvent): string {
  return createHash('sha256').update(canonicalJson(event)).digest('hex');
}

export function canonicalJson(value: unknown): string {
  if (value === undefined) return 'null';
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export interface ChainBreak {
  seq: number;
  id: string | null;
  reason: string;
}

/**
 * Checks a run of events (in seq order) continues the chain from `prev`. Returns the first break,
 * or the state to continue from.
 */
export function checkChain(
  events: readonly (ChainedEvent & { hash: string })[],
  prev: { seq: number; hash: string },
): { break: ChainBreak } | { seq: number; hash: string } {
  let { seq, hash } = prev;
  for (const { hash: storedHash, ...event } of events) {
    if (event.seq !== seq + 1) {
      return {
        break: { seq: seq + 1, id: null, reason: `event ${seq + 1} is missing (next is ${event.seq})` },
      };
    }
    if (event.prevHash !== hash) {
      return {
        break: {
          seq: event.seq,
          id: event.id,
          reason: 'its previous-hash does not match the event before it',
        },
      };
    }
    if (hashEvent(event) !== storedHash) {
      return {
        break: {
          seq: event.seq,
          id: event.id,
          reason: 'its contents do not match its hash (changed after it was written)',
        },
      };
    }
    seq = event.seq;
    hash = storedHash;
  }
  return { seq, hash };
}
