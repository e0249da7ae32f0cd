import type { GapNotice, Message } from '../core/message.js';
import type { Encoder, EndReason, Sink } from '../core/sink.js';
import { ChunkedStream, chunk } from './chunked.js';

/*
 * Chunked stream: newline-delimited JSON, one object per line, each line its
 * own HTTP chunk so that a reader sees every message as soon as it is sent.
 * Every line has a `type`; `message` and `gap` lines carry `id`, the cursor
 * to resume from.
 */
export function streamMessageLine(message: Message, cursor: string): string {
  const event = message.event === undefined ? '' : `,"event":${JSON.stringify(message.event)}`;
  return `{"type":"message","channel":${JSON.stringify(message.channel)},"id":${JSON.stringify(cursor)}${event},"data":${JSON.stringify(message.data)}}\n`;
}

export const streamEncoder: Encoder = {
  name: 'stream',
  message: (message, cursor) => chunk(streamMessageLine(message, cursor)),
};

export const STREAM_HEADERS: Record<string, string> = {
  'Content-Type': 'application/x-ndjson; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
};

export const STREAM_HEARTBEAT = chunk('{"type":"heartbeat"}\n');

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
    this.stream.write(chunk(`${JSON.stringify({ type: 'gap', ...notice, id: cursor })}\n`), this.sweep());
  }

  live(cursor: string): void {
    this.stream.write(chunk(`{"type":"live","cursor":${JSON.stringify(cursor)}}\n`), this.sweep());
  }

  end(reason: EndReason, detail?: string): void {
    if (reason === 'disconnected') {
      this.stream.end(chunk(`${JSON.stringify({ type: 'error', code: 'KOMETA_ERR_DISCONNECTED', detail: detail ?? 'Disconnected by the application' })}\n`));
      return;
    }
    if (reason === 'token-expired') {
      this.stream.end(chunk('{"type":"error","code":"KOMETA_ERR_TOKEN_EXPIRED","detail":"The credential expired; subscribe again with a fresh one to resume"}\n'));
      return;
    }
    this.stream.end(chunk(`{"type":"${reason}","retryMs":${this.retryMs}}\n`));
  }
}

export function streamSlowFrame(): Buffer {
  return chunk('{"type":"error","code":"KOMETA_ERR_SLOW_CONSUMER","detail":"The subscriber did not read fast enough; reconnect to resume from history"}\n');
}
