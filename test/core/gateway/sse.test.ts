import { describe, expect, it } from 'vitest';
import { EventStreamReader } from '#core/gateway/sse.ts';

describe('EventStreamReader', () => {
  it('reads events split anywhere across chunks, with every line ending', () => {
    const text =
      'event: endpoint\r\ndata: /messages?sessionId=1\r\n\r\n: comment\n\ndata: {"a":\ndata: 1}\rid: 7\r\r';
    for (let cut = 0; cut <= text.length; cut++) {
      const reader = new EventStreamReader();
      const events = [
        ...reader.push(text.slice(0, cut)),
        ...reader.push(''),
        ...reader.push(text.slice(cut)),
      ];
      expect(events, `cut at ${cut}`).toEqual([
        { event: 'endpoint', data: '/messages?sessionId=1', id: undefined },
        { event: 'message', data: '{"a":\n1}', id: '7' },
      ]);
      // A final CR may yet be the first half of a CRLF.
      expect(reader.atBoundary).toBe(false);
      expect(reader.push('\n')).toEqual([]);
      expect(reader.atBoundary).toBe(true);
    }
  });

  it('decodes UTF-8 split between chunks, and knows when an event is half read', () => {
    const bytes = new TextEncoder().encode('data: ünïcödé\n\n');
    const reader = new EventStreamReader();
    expect(reader.push(bytes.subarray(0, 8))).toEqual([]);
    expect(reader.atBoundary).toBe(false);
    expect(reader.push(bytes.subarray(8))).toEqual([{ event: 'message', data: 'ünïcödé', id: undefined }]);
    expect(reader.atBoundary).toBe(true);
  });

  it('dispatches nothing for an event without data, and strips one leading space only', () => {
    const reader = new EventStreamReader();
    expect(reader.push('event: x\n\ndata:  two spaces\n\n')).toEqual([
      { event: 'message', data: ' two spaces', id: undefined },
    ]);
  });
});
