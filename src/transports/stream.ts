import type { GapNotice, Message } from '../core/message.js';
import type { Encoder, EndReason, Sink } from '../core/sink.js';
import { NDJSON_CONTENT_TYPE, encodeStreamGap, encodeStreamLine, encodeStreamMessage } from '../protocol/ndjson.js';
import { ChunkedStream, chunk } from './chunked.js';
import { END_DETAIL } from './end-detail.js';

/*
 * Chunked stream: newline-delimited JSON (protocol/ndjson.ts), each line its
 * own HTTP chunk so that a reader sees every message as soon as it is sent.
 */
export function streamMessageLine(message: Message, cursor: string): string {
  return encodeStreamMessage(message.channel, cursor, message.event, message.data);
}

export const streamEncoder: Encoder = {
  name: 'stream',
  message: (message, cursor) => chunk(streamMessageLine(message, cursor)),
};

export const STREAM_HEADERS: Record<string, string> = {
  'Content-Type': NDJSON_CONTENT_TYPE,
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
};

export const STREAM_HEARTBEAT = chunk(encodeStreamLine({ type: 'heartbeat' }));

export class StreamSink implements Sink {
  readonly encoder = streamEncoder;

  constructor(
    readonly stream: ChunkedStream,
    private readonly sweep: () => number,
    private readonly retryMs: number,
  ) {}

  open(): void {
    this.stream.open(STREAM_HEADERS);
  }

  push(frames: Buffer): void {
    this.stream.write(frames, this.sweep());
  }

  gap(notice: GapNotice, cursor: string): void {
    this.stream.write(chunk(encodeStreamGap(notice, cursor)), this.sweep());
  }

  live(cursor: string): void {
    this.stream.write(chunk(encodeStreamLine({ type: 'live', cursor })), this.sweep());
  }

  end(reason: EndReason, detail?: string): void {
    if (reason === 'disconnected') {
      const line = {
        type: 'error',
        code: 'KOMETA_ERR_DISCONNECTED',
        detail: detail ?? END_DETAIL.disconnected,
      } as const;
      this.stream.end(chunk(encodeStreamLine(line)));
      return;
    }
    if (reason === 'token-expired') {
      this.stream.end(
        chunk(encodeStreamLine({ type: 'error', code: 'KOMETA_ERR_TOKEN_EXPIRED', detail: END_DETAIL.tokenExpired })),
      );
      return;
    }
    this.stream.end(chunk(encodeStreamLine({ type: 'shutdown', retryMs: this.retryMs })));
  }
}

export function streamSlowFrame(): Buffer {
  return chunk(encodeStreamLine({ type: 'error', code: 'KOMETA_ERR_SLOW_CONSUMER', detail: END_DETAIL.slowConsumer }));
}
