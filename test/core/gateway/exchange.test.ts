import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  INVALID_REQUEST,
  operationOf,
  outcomeOf,
  PARSE_ERROR,
  parseBody,
  type ExchangeMessage,
} from '#core/gateway/exchange.ts';

function messages(body: string | Uint8Array): ExchangeMessage[] {
  const parsed = parseBody(body);
  if (!parsed.ok) throw new Error(`expected a valid body, got ${parsed.error.error.message}`);
  return parsed.messages;
}

function refusal(body: string | Uint8Array) {
  const parsed = parseBody(body);
  if (parsed.ok) throw new Error('expected the body to be refused');
  expect(parsed.error.jsonrpc).toBe('2.0');
  return parsed.error;
}

const call = (id: unknown, name: string, extra: object = {}) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: { city: 'Oslo' }, ...extra },
  });

describe('parseBody', () => {
  it('reads a tools/call request: id, method, tool and operation', () => {
    expect(messages(call(7, 'weather_forecast'))).toEqual([
      {
        kind: 'request',
        id: 7,
        method: 'tools/call',
        params: { name: 'weather_forecast', arguments: { city: 'Oslo' } },
        operation: 'tools/call weather_forecast',
        toolName: 'weather_forecast',
      },
    ]);
    const parsed = parseBody(Buffer.from(call('req-1', 'x')));
    expect(parsed).toMatchObject({ ok: true, batch: false, messages: [{ id: 'req-1', toolName: 'x' }] });
  });

  it('reads a notification (no id) and other requests without a tool', () => {
    expect(messages('{"jsonrpc":"2.0","method":"notifications/initialized"}')).toEqual([
      {
        kind: 'notification',
        method: 'notifications/initialized',
        params: undefined,
        operation: 'notifications/initialized',
      },
    ]);
    const [initialize] = messages(
      '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}',
    );
    expect(initialize).toMatchObject({ kind: 'request', id: 0, operation: 'initialize' });
    expect(initialize).not.toHaveProperty('toolName');
  });

  it('reads responses: results and errors, an error with a null id', () => {
    expect(messages('{"jsonrpc":"2.0","id":3,"result":{"content":[]}}')).toEqual([
      { kind: 'response', id: 3, result: { content: [] } },
    ]);
    expect(
      messages('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error","data":{"at":1}}}'),
    ).toEqual([
      { kind: 'response', id: null, error: { code: -32700, message: 'Parse error', data: { at: 1 } } },
    ]);
  });

  it('reads a batch of requests, notifications and responses', () => {
    const body = `[${call(1, 'a')},{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}},{"jsonrpc":"2.0","id":"s1","result":{}}]`;
    const parsed = parseBody(body);
    expect(parsed.ok && parsed.batch).toBe(true);
    expect(messages(body).map((m) => m.kind)).toEqual(['request', 'notification', 'response']);
  });

  it('answers a body that is not JSON with -32700 and a null id', () => {
    for (const body of [
      '',
      '{',
      'hello',
      '{"jsonrpc":"2.0",}',
      '\ufeff{}',
      Buffer.from([0x7b, 0xff, 0x7d]),
    ]) {
      const error = refusal(body);
      expect(error.id).toBeNull();
      expect(error.error.code).toBe(PARSE_ERROR);
      expect(error.error.message).toMatch(/^Parse error: the body is not (valid JSON|UTF-8 text)$/);
    }
  });

  it('answers JSON that is not JSON-RPC 2.0 with -32600 and a sentence saying why', () => {
    const cases: [string, RegExp][] = [
      ['42', /must be a JSON object/],
      ['null', /must be a JSON object/],
      ['"tools/call"', /must be a JSON object/],
      ['{"id":1,"method":"ping"}', /"jsonrpc" must be "2.0"/],
      ['{"jsonrpc":"1.0","id":1,"method":"ping"}', /"jsonrpc" must be "2.0"/],
      ['{"jsonrpc":"2.0","id":1}', /needs a "method"/],
      ['{"jsonrpc":"2.0","id":1,"method":""}', /"method" must be a non-empty string/],
      ['{"jsonrpc":"2.0","id":1,"method":5}', /"method" must be a non-empty string/],
      ['{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}', /"params" must be an object or an array/],
      ['{"jsonrpc":"2.0","id":null,"method":"ping"}', /"id" must not be null/],
      ['{"jsonrpc":"2.0","id":1.5,"method":"ping"}', /"id" must be a string or an integer/],
      ['{"jsonrpc":"2.0","id":{},"method":"ping"}', /"id" must be a string or an integer/],
      ['{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"m"}}', /not have both/],
      ['{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"m"}}', /integer "code"/],
      ['{"jsonrpc":"2.0","id":null,"result":{}}', /"id" must not be null/],
      ['[]', /the batch is empty/],
      [`[${call(1, 'a')},{"jsonrpc":"2.0"}]`, /batch member 1: a message needs a "method"/],
    ];
    for (const [body, message] of cases) {
      const error = refusal(body);
      expect(error.error.code, body).toBe(INVALID_REQUEST);
      expect(error.error.message, body).toMatch(/^Invalid Request: /);
      expect(error.error.message, body).toMatch(message);
    }
  });

  it("answers with the request's id when it could be read, else null", () => {
    expect(refusal('{"jsonrpc":"2.0","id":"r9","method":7}').id).toBe('r9');
    expect(refusal('{"jsonrpc":"1.0","id":4,"method":"ping"}').id).toBe(4);
    expect(refusal('{"jsonrpc":"2.0","id":[1],"method":"ping"}').id).toBeNull();
  });

  it('refuses ids too large to read exactly, and keeps long string ids', () => {
    for (const id of ['12345678901234567890', '9007199254740992', '1e400', '-9007199254740993']) {
      const error = refusal(`{"jsonrpc":"2.0","id":${id},"method":"ping"}`);
      expect(error.error.message).toMatch(/too large a number to read exactly.*send it as a string/);
      expect(error.id).toBeNull();
    }
    expect(messages('{"jsonrpc":"2.0","id":9007199254740991,"method":"ping"}')[0]).toMatchObject({
      id: 9007199254740991,
    });
    const long = 'i'.repeat(100_000);
    expect(messages(call(long, 't'))[0]).toMatchObject({ id: long });
  });

  it('treats __proto__ and other inherited names as plain data', () => {
    const polluted = messages(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"__proto__":{"name":"evil","isAdmin":true}}}',
    )[0]!;
    expect(polluted).toMatchObject({ kind: 'request', operation: 'tools/call' });
    expect(polluted).not.toHaveProperty('toolName');
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
    expect(messages(call(1, '__proto__'))[0]).toMatchObject({
      toolName: '__proto__',
      operation: 'tools/call __proto__',
    });
    for (const method of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(messages(`{"jsonrpc":"2.0","id":1,"method":"${method}"}`)[0]).toMatchObject({
        operation: method,
      });
    }
    // Members only on the prototype do not count as present.
    expect(refusal('{"__proto__":{"jsonrpc":"2.0","method":"ping"},"id":1}').error.message).toMatch(
      /"jsonrpc"/,
    );
    expect(refusal('{"jsonrpc":"2.0","__proto__":{"method":"ping"},"id":1}').error.message).toMatch(
      /needs a "method"/,
    );
    expect(messages('{"jsonrpc":"2.0","__proto__":{"id":1},"method":"ping"}')[0]!.kind).toBe('notification');
    expect(outcomeOf({ result: JSON.parse('{"__proto__":{"isError":true}}') as unknown }).outcome).toBe('ok');
  });

  it('never throws, whatever the body', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        (body) => {
          const parsed = parseBody(body);
          if (!parsed.ok) expect([PARSE_ERROR, INVALID_REQUEST]).toContain(parsed.error.error.code);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('operationOf', () => {
  it('names MCP operations as the collector does', () => {
    expect(operationOf('tools/call', { name: 'get-weather' })).toBe('tools/call get-weather');
    expect(operationOf('prompts/get', { name: 'analyze-code' })).toBe('prompts/get analyze-code');
    expect(operationOf('resources/read', { uri: 'file:///etc/hosts', name: 'n' })).toBe('resources/read');
    expect(operationOf('tools/list', {})).toBe('tools/list');
    expect(operationOf('tools/call', { name: '' })).toBe('tools/call');
    expect(operationOf('tools/call', { name: 42 })).toBe('tools/call');
    expect(operationOf('tools/call', undefined)).toBe('tools/call');
    expect(operationOf('tools/call', ['get-weather'])).toBe('tools/call');
    expect(operationOf('notifications/progress', { name: 'x' })).toBe('notifications/progress');
  });

  it('cuts long names as the collector does, never splitting a surrogate pair', () => {
    expect(operationOf('tools/call', { name: 'x'.repeat(5000) })).toHaveLength(4096);
    expect(operationOf('tools/call', { name: 'abcdef' }, 12)).toBe('tools/call a');
    // 'tools/call ' is 11 units; the 12th would be the first half of 🔑.
    expect(operationOf('tools/call', { name: '🔑' }, 12)).toBe('tools/call ');
  });
});

describe('outcomeOf', () => {
  it('tells ok, JSON-RPC errors and tool errors apart', () => {
    expect(outcomeOf({ result: { content: [{ type: 'text', text: 'sunny' }] } })).toEqual({
      outcome: 'ok',
      errorType: '',
    });
    expect(outcomeOf({ result: { content: [], isError: false } })).toEqual({ outcome: 'ok', errorType: '' });
    expect(outcomeOf({ result: { content: [], isError: true } })).toEqual({
      outcome: 'tool_error',
      errorType: 'tool_error',
    });
    expect(outcomeOf({ result: { isError: 'true' } }).outcome).toBe('ok');
    expect(outcomeOf({ result: null })).toEqual({ outcome: 'ok', errorType: '' });
    expect(outcomeOf({ error: { code: -32602 } })).toEqual({
      outcome: 'error',
      errorCode: -32602,
      errorType: '-32602',
    });
  });

  it('reads the outcome of a parsed response', () => {
    const [response] = messages(
      '{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}',
    );
    if (response?.kind !== 'response') throw new Error('expected a response');
    expect(outcomeOf(response)).toEqual({ outcome: 'error', errorCode: -32601, errorType: '-32601' });
  });
});
