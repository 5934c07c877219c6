import { gzipSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  jsonBody,
  kv,
  metrics,
  metricsProtobuf,
  span,
  T0,
  traceProtobuf,
  traces,
  type Json,
  type JsonObject,
} from './fixtures/otlp.ts';
import { buildOtlpApp, INGEST_KEY, type MemorySink } from './helpers.ts';
import { seededRandom as mulberry32 } from '#test/helpers/random.ts';

/**
 * Feeds the receiver random and mutated protobuf and JSON bodies. Every answer must be one the
 * OTLP specification gives for bad input (never a 500), within a timeout, with nothing stored for
 * a refused body and no prototype polluted. The seed is printed on failure; set
 * PYLEE_FUZZ_SEED to replay a run.
 */

const ITERATIONS = 2000;
const ALLOWED = new Set([200, 400, 413, 415]);
const TIMEOUT_MS = 10_000;
const SEED = Number(process.env.PYLEE_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const MAX_BODY = 256 * 1024;

const random = mulberry32(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;

const KEYS = [
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'polluted',
  'resourceSpans',
  'resource_spans',
  'resourceMetrics',
  'scopeSpans',
  'scopeMetrics',
  'spans',
  'metrics',
  'resource',
  'attributes',
  'key',
  'value',
  'stringValue',
  'intValue',
  'doubleValue',
  'arrayValue',
  'kvlistValue',
  'bytesValue',
  'values',
  'traceId',
  'spanId',
  'kind',
  'status',
  'code',
  'startTimeUnixNano',
  'endTimeUnixNano',
  'timeUnixNano',
  'gauge',
  'sum',
  'histogram',
  'exponentialHistogram',
  'dataPoints',
  'asDouble',
  'asInt',
  'bucketCounts',
  'explicitBounds',
  'positive',
  'scale',
  'offset',
  'count',
  'zeroCount',
  'aggregationTemporality',
  'isMonotonic',
  'name',
];

const SCALARS: Json[] = [
  null,
  true,
  false,
  0,
  -1,
  2,
  1.5,
  -0,
  1e308,
  -1e308,
  Number.MAX_SAFE_INTEGER,
  '',
  '0',
  '-1',
  '18446744073709551615',
  '18446744073709551616',
  '-9223372036854775809',
  'NaN',
  'Infinity',
  'SPAN_KIND_SERVER',
  'AGGREGATION_TEMPORALITY_CUMULATIVE',
  'nope',
  '5b8efff798038103d269b633813fc60c',
  'zz',
  '\u0000',
  '😀',
  'x'.repeat(5000),
];

function randomJson(depth: number): Json {
  const roll = random();
  if (depth <= 0 || roll < 0.4) return pick(SCALARS);
  if (roll < 0.7) return Array.from({ length: int(4) }, () => randomJson(depth - 1));
  const o: JsonObject = {};
  const n = int(5);
  for (let i = 0; i < n; i++) {
    // defineProperty, so '__proto__' becomes an own key as JSON.parse would make it.
    Object.defineProperty(o, pick(KEYS), {
      value: randomJson(depth - 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return o;
}

function richTraces(): JsonObject {
  return traces([
    span({
      attributes: [
        kv('mcp.method.name', 'tools/call'),
        kv('gen_ai.tool.name', 'forecast'),
        kv('http.response.status_code', 500),
        kv('ratio', 0.5),
        {
          key: 'list',
          value: {
            arrayValue: { values: [{ stringValue: 'a' }, { kvlistValue: { values: [kv('k', true)] } }] },
          },
        },
      ],
      status: 2,
    }),
    span({ kind: 1, spanId: '1111111111111111' }),
  ]);
}

function richMetrics(): JsonObject {
  const t = T0.toString();
  const start = (T0 - 60_000_000_000n).toString();
  return metrics([
    { name: 'process.cpu.utilization', gauge: { dataPoints: [{ timeUnixNano: t, asDouble: 0.5 }] } },
    {
      name: 'process.cpu.time',
      sum: {
        aggregationTemporality: 2,
        isMonotonic: true,
        dataPoints: [{ startTimeUnixNano: start, timeUnixNano: t, asInt: '7' }],
      },
    },
    {
      name: 'http.server.request.duration',
      histogram: {
        aggregationTemporality: 2,
        dataPoints: [
          {
            startTimeUnixNano: start,
            timeUnixNano: t,
            count: '3',
            sum: 1,
            bucketCounts: ['1', '1', '1'],
            explicitBounds: [0.1, 1],
          },
        ],
      },
    },
    {
      name: 'mcp.server.operation.duration',
      exponentialHistogram: {
        aggregationTemporality: 1,
        dataPoints: [
          {
            startTimeUnixNano: start,
            timeUnixNano: t,
            count: '2',
            scale: 3,
            zeroCount: '0',
            positive: { offset: -20, bucketCounts: ['1', '1'] },
          },
        ],
      },
    },
  ]);
}

const VALID = { traces: richTraces(), metrics: richMetrics() };
const VALID_PB = { traces: traceProtobuf(VALID.traces), metrics: metricsProtobuf(VALID.metrics) };

/** Replaces one random node of a JSON tree with a random value. */
function mutateTree(value: Json): Json {
  if (random() < 0.15) return randomJson(3);
  if (Array.isArray(value)) {
    if (value.length === 0) return [randomJson(2)];
    const copy = [...value];
    const i = int(copy.length);
    copy[i] = mutateTree(copy[i]!);
    return copy;
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return randomJson(2);
    const copy: JsonObject = { ...value };
    const k = pick(keys);
    copy[k] = mutateTree(copy[k]!);
    return copy;
  }
  return randomJson(2);
}

function flipBits(body: Buffer, flips: number): Buffer {
  const out = Buffer.from(body);
  if (out.length === 0) return out;
  for (let i = 0; i < flips; i++) out[int(out.length)]! ^= 1 << int(8);
  return out;
}

/** A span whose attribute nests arrays and maps `depth` deep, written as text (too deep to stringify). */
function deepAttributeJson(depth: number): Buffer {
  let open = '';
  let close = '';
  for (let i = 0; i < depth; i++) {
    if (random() < 0.5) {
      open += '{"arrayValue":{"values":[';
      close = ']}}' + close;
    } else {
      open += '{"kvlistValue":{"values":[{"key":"k","value":';
      close = '}]}}' + close;
    }
  }
  const s = JSON.stringify(span({ attributes: [{ key: 'deep', value: 'DEEP' }] }));
  const text = JSON.stringify(traces([]))
    .replace('"spans":[]', `"spans":[${s}]`)
    .replace('"DEEP"', `${open}{"stringValue":"leaf"}${close}`);
  return Buffer.from(text);
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

interface Case {
  kind: string;
  signal: 'traces' | 'metrics';
  contentType: string;
  encoding?: string;
  body: Buffer;
}

function makeCase(): Case {
  const signal = random() < 0.5 ? 'traces' : 'metrics';
  const pb = 'application/x-protobuf';
  const json = 'application/json';
  const roll = int(14);
  switch (roll) {
    case 0:
      return {
        kind: 'random bytes',
        signal,
        contentType: pb,
        body: Buffer.from(Array.from({ length: int(512) }, () => int(256))),
      };
    case 1:
      return { kind: 'bit flips', signal, contentType: pb, body: flipBits(VALID_PB[signal], 1 + int(8)) };
    case 2: {
      const body = VALID_PB[pick(['traces', 'metrics'] as const)];
      return {
        kind: 'truncated protobuf',
        signal,
        contentType: pb,
        body: body.subarray(0, int(body.length)),
      };
    }
    case 3: {
      const a = VALID_PB.traces;
      const b = VALID_PB.metrics;
      return {
        kind: 'spliced protobuf',
        signal,
        contentType: pb,
        body: Buffer.concat([a.subarray(0, int(a.length)), b.subarray(int(b.length))]),
      };
    }
    case 4:
      return { kind: 'random JSON', signal, contentType: json, body: jsonBody(randomJson(6)) };
    case 5:
      return {
        kind: 'mutated JSON tree',
        signal,
        contentType: json,
        body: jsonBody(mutateTree(mutateTree(VALID[signal]))),
      };
    case 6:
      return {
        kind: 'bit-flipped JSON text',
        signal,
        contentType: json,
        body: flipBits(jsonBody(VALID[signal]), 1 + int(4)),
      };
    case 7: {
      const depth = 1000 + int(100_000);
      const open = pick(['[', '{"a":', '{"resourceSpans":[']);
      return {
        kind: 'huge JSON nesting',
        signal,
        contentType: json,
        body: Buffer.from(open.repeat(depth) + '1' + ']'.repeat(int(depth))),
      };
    }
    case 8: {
      return {
        kind: 'deep attribute (JSON)',
        signal: 'traces',
        contentType: json,
        body: deepAttributeJson(50 + int(3000)),
      };
    }
    case 9: {
      // AnyValue{array_value: ArrayValue{values: [AnyValue{...}]}} nested in protobuf directly.
      const wrap = (tag: number, payload: Buffer) =>
        Buffer.concat([Buffer.from([tag]), varint(payload.length), payload]);
      let inner = Buffer.from([0x0a, 0x01, 0x78]);
      for (let i = 0, n = 10 + int(300); i < n; i++) inner = wrap(0x2a, wrap(0x0a, inner));
      const pair = Buffer.concat([wrap(0x0a, Buffer.from('k')), wrap(0x12, inner)]);
      return {
        kind: 'deep attribute (protobuf)',
        signal: 'traces',
        contentType: pb,
        body: wrap(0x0a, wrap(0x0a, wrap(0x0a, pair))),
      };
    }
    case 10: {
      const body = random() < 0.5 ? flipBits(VALID_PB[signal], int(3)) : jsonBody(mutateTree(VALID[signal]));
      const contentType = body[0] === 0x7b ? json : pb;
      const gz = gzipSync(body);
      return {
        kind: 'gzip',
        signal,
        contentType,
        encoding: 'gzip',
        body: random() < 0.3 ? flipBits(gz, 1 + int(4)) : gz,
      };
    }
    case 11:
      return {
        kind: 'not gzip',
        signal,
        contentType: pick([pb, json]),
        encoding: 'gzip',
        body: Buffer.from(Array.from({ length: int(64) }, () => int(256))),
      };
    case 12:
      return {
        kind: 'odd content type',
        signal,
        contentType: pick([
          'text/plain',
          'application/protobuf',
          'application/json; charset=utf-8',
          'APPLICATION/JSON',
          'application/x-protobuf;x=y',
          '',
          'multipart/form-data',
        ]),
        body: random() < 0.5 ? VALID_PB[signal] : jsonBody(VALID[signal]),
      };
    default:
      return {
        kind: 'oversized',
        signal,
        contentType: pick([pb, json]),
        body: Buffer.alloc(MAX_BODY + 1 + int(1000), 0x5b),
      };
  }
}

let app: FastifyInstance;
let sink: MemorySink;

beforeAll(async () => {
  ({ app, sink } = await buildOtlpApp({ maxBodyBytes: MAX_BODY }));
});
afterAll(async () => {
  await app?.close();
});

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS} ms: ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('OTLP receiver under random and mutated input', () => {
  it(`answers ${ITERATIONS} hostile bodies with 200, 400, 413 or 415, stores nothing it refuses, pollutes no prototype`, async () => {
    const objectKeys = Object.getOwnPropertyNames(Object.prototype).sort();
    const arrayKeys = Object.getOwnPropertyNames(Array.prototype).sort();
    const failures: string[] = [];
    const statuses = new Map<number, number>();
    for (let i = 0; i < ITERATIONS; i++) {
      const c = makeCase();
      const before = sink.stored;
      const headers: Record<string, string> = { authorization: `Bearer ${INGEST_KEY}` };
      if (c.contentType) headers['content-type'] = c.contentType;
      if (c.encoding) headers['content-encoding'] = c.encoding;
      const res = await withTimeout(
        app.inject({ method: 'POST', url: `/v1/${c.signal}`, headers, body: c.body }),
        `${c.kind} #${i} (seed ${SEED})`,
      );
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      const describeCase = `#${i} ${c.kind} → ${res.statusCode} ${res.body.slice(0, 160)} [body ${c.body.subarray(0, 48).toString('hex')}]`;
      if (!ALLOWED.has(res.statusCode)) failures.push(describeCase);
      else if (res.statusCode !== 200 && sink.stored !== before)
        failures.push(`stored data for a refused body: ${describeCase}`);
    }
    expect(failures, `seed ${SEED}`).toEqual([]);
    // The mix reached past the parsers: some bodies were accepted, some refused for each reason.
    for (const status of ALLOWED)
      expect(statuses.get(status) ?? 0, `status ${status}, seed ${SEED}`).toBeGreaterThan(0);

    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(objectKeys);
    expect(Object.getOwnPropertyNames(Array.prototype).sort()).toEqual(arrayKeys);
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    expect(typeof ({} as { toString: unknown }).toString).toBe('function');

    // Still serving: a valid export over a real socket.
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    const res = await fetch(`${url}/v1/traces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${INGEST_KEY}`, 'content-type': 'application/x-protobuf' },
      body: new Uint8Array(VALID_PB.traces),
    });
    expect(res.status).toBe(200);
  });
});
