import type { Message, GapNotice } from '../core/message.js';
import type { Encoder, EndReason, Sink } from '../core/sink.js';
import {
  SSE_CONTENT_TYPE,
  encodeSseComment,
  encodeSseError,
  encodeSseEvent,
  encodeSseGap,
  encodeSseMessage,
  encodeSseShutdown,
} from '../protocol/sse.js';
import { ChunkedStream, chunk } from './chunked.js';
import { END_DETAIL } from './end-detail.js';

/* Server-Sent Events: protocol/sse.ts has the format; this file owns the connection and its queue. */

export function sseMessage(message: Message, cursor: string): string {
  return encodeSseMessage(cursor, message.event, message.data);
}

export const sseEncoder: Encoder = {
  name: 'sse',
  message: (message, cursor) => chunk(sseMessage(message, cursor)),
};

export const SSE_HEADERS: Record<string, string> = {
  'Content-Type': SSE_CONTENT_TYPE,
  // no-transform: proxies must not compress or buffer the stream.
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
};

/** A shared comment frame; the sweep writes this one Buffer to every quiet SSE connection. */
export const SSE_HEARTBEAT = chunk(encodeSseComment());

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
    this.stream.write(chunk(encodeSseEvent({ retry: this.retryMs })), this.sweep());
  }

  push(frames: Buffer): void {
    this.#sentId = true;
    this.stream.write(frames, this.sweep());
  }

  gap(notice: GapNotice, cursor: string): void {
    this.#sentId = true;
    this.stream.write(chunk(encodeSseGap(notice, cursor)), this.sweep());
  }

  /*
   * An event with an id and no data sets the EventSource's last event ID
   * without dispatching anything ("If the data buffer is an empty string, set
   * the data buffer and the event type buffer to the empty string and return"
   * comes after the last event ID is updated). So a client that drops before
   * the first message still resumes from where it subscribed, not from "now".
   */
  live(cursor: string): void {
    if (!this.#sentId) this.stream.write(chunk(encodeSseEvent({ id: cursor })), this.sweep());
    this.#sentId = true;
  }

  end(reason: EndReason, detail?: string): void {
    if (reason === 'disconnected') {
      this.stream.end(chunk(encodeSseError('KOMETA_ERR_DISCONNECTED', detail ?? END_DETAIL.disconnected)));
      return;
    }
    if (reason === 'token-expired') {
      this.stream.end(chunk(encodeSseError('KOMETA_ERR_TOKEN_EXPIRED', END_DETAIL.tokenExpired)));
      return;
    }
    this.stream.end(chunk(encodeSseShutdown(this.retryMs)));
  }
}

export function sseSlowFrame(): Buffer {
  return chunk(encodeSseError('KOMETA_ERR_SLOW_CONSUMER', END_DETAIL.slowConsumer));
}
