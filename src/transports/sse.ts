import type { Message, GapNotice } from '../core/message.js';
import type { Encoder, EndReason, Sink } from '../core/sink.js';
import { ChunkedStream, chunk } from './chunked.js';

/*
 * Server-Sent Events (WHATWG HTML, "Server-sent events").
 * "Lines must be separated by either a U+000D CARRIAGE RETURN U+000A LINE FEED
 *  (CRLF) character pair, a single U+000A LINE FEED (LF) character, or a single
 *  U+000D CARRIAGE RETURN (CR) character" — so data is split on all three and
 * each line gets its own `data:` field; ids and event names never contain
 * CR or LF (cursors and event names are validated), so framing cannot be broken
 * by what is published.
 */
const LINE_BREAK = /\r\n|\r|\n/;

function dataLines(data: string): string {
  if (!data.includes('\n') && !data.includes('\r')) return `data: ${data}\n`;
  let out = '';
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`;
  return out;
}

export function sseMessage(message: Message, cursor: string): string {
  const event = message.event === undefined ? '' : `event: ${message.event}\n`;
  return `id: ${cursor}\n${event}${dataLines(message.data)}\n`;
}

export const sseEncoder: Encoder = {
  name: 'sse',
  message: (message, cursor) => chunk(sseMessage(message, cursor)),
};

export const SSE_HEADERS: Record<string, string> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  // no-transform: proxies must not compress or buffer the stream.
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
};

/** A shared comment frame; the sweep writes this one Buffer to every quiet SSE connection. */
export const SSE_HEARTBEAT = chunk(':\n\n');

export class SseSink implements Sink {
  readonly encoder = sseEncoder;
  #sentId = false;

  constructor(
    readonly stream: ChunkedStream,
    private readonly sweep: () => number,
    private readonly retryMs: number,
  ) {}

  /** `retry:` tells EventSource how long to wait before reconnecting. */
  open(): void {
    this.stream.open(SSE_HEADERS);
    this.stream.write(chunk(`retry: ${this.retryMs}\n\n`), this.sweep());
  }

  push(frames: Buffer): void {
    this.#sentId = true;
    this.stream.write(frames, this.sweep());
  }

  gap(notice: GapNotice, cursor: string): void {
    this.#sentId = true;
    this.stream.write(chunk(`event: kometa-gap\nid: ${cursor}\ndata: ${JSON.stringify(notice)}\n\n`), this.sweep());
  }

  /*
   * An event with an id and no data sets the EventSource's last event ID
   * without dispatching anything ("If the data buffer is an empty string, set
   * the data buffer and the event type buffer to the empty string and return"
   * comes after the last event ID is updated). So a client that drops before
   * the first message still resumes from where it subscribed, not from "now".
   */
  live(cursor: string): void {
    if (!this.#sentId) this.stream.write(chunk(`id: ${cursor}\n\n`), this.sweep());
    this.#sentId = true;
  }

  end(reason: EndReason, detail?: string): void {
    if (reason === 'disconnected') {
      this.stream.end(chunk(`event: kometa-error\ndata: ${JSON.stringify({ code: 'KOMETA_ERR_DISCONNECTED', detail: detail ?? 'Disconnected by the application' })}\n\n`));
      return;
    }
    if (reason === 'token-expired') {
      this.stream.end(chunk('event: kometa-error\ndata: {"code":"KOMETA_ERR_TOKEN_EXPIRED","detail":"The credential expired; subscribe again with a fresh one to resume"}\n\n'));
      return;
    }
    const retryMs = this.retryMs;
    this.stream.end(chunk(`retry: ${retryMs}\nevent: kometa-${reason}\ndata: {"retryMs":${retryMs}}\n\n`));
  }

}

export function sseSlowFrame(): Buffer {
  return chunk('event: kometa-error\ndata: {"code":"KOMETA_ERR_SLOW_CONSUMER","detail":"The subscriber did not read fast enough; reconnect to resume from history"}\n\n');
}
