/**
 * Reads a `text/event-stream` as it passes through the gateway, so the JSON-RPC messages inside an
 * SSE response can be measured while every byte goes on to the client unchanged. The WHATWG
 * "event stream interpretation": lines end in CRLF, LF or CR; `data` lines of one event join with
 * LF; a blank line dispatches; lines starting with `:` are comments.
 */

export interface ServerSentEvent {
  /** `message` unless the event names another type (the old SSE transport's `endpoint`). */
  event: string;
  data: string;
  id: string | undefined;
}

export class EventStreamReader {
  readonly #decoder = new TextDecoder('utf-8');
  #buffer = '';
  #event = '';
  #data: string[] = [];
  #id: string | undefined;
  /** A CR ended the last chunk: an LF starting the next one belongs to it. */
  #pendingCr = false;

  /** No event is half read: bytes added now (a keep-alive comment) cannot split one. */
  get atBoundary(): boolean {
    return this.#buffer === '' && this.#data.length === 0 && this.#event === '' && !this.#pendingCr;
  }

  /** The events that `chunk` completes. */
  push(chunk: Uint8Array | string): ServerSentEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.#decoder.decode(chunk, { stream: true });
    if (text === '') return [];
    if (this.#pendingCr && text.startsWith('\n')) text = text.slice(1);
    this.#pendingCr = false;
    this.#buffer += text;
    const out: ServerSentEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.#buffer.length; i++) {
      const c = this.#buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.#line(this.#buffer.slice(start, i), out);
      if (c === 13) {
        if (i + 1 === this.#buffer.length) this.#pendingCr = true;
        else if (this.#buffer.charCodeAt(i + 1) === 10) i++;
      }
      start = i + 1;
    }
    this.#buffer = this.#buffer.slice(start);
    return out;
  }

  #line(line: string, out: ServerSentEvent[]): void {
    if (line === '') {
      if (this.#data.length > 0)
        out.push({ event: this.#event || 'message', data: this.#data.join('\n'), id: this.#id });
      this.#event = '';
      this.#data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.#data.push(value);
    else if (field === 'event') this.#event = value;
    else if (field === 'id' && !value.includes('\0')) this.#id = value;
  }
}
