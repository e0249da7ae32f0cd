import type { ServerResponse } from 'node:http';
import type { GapNotice, Message } from '../core/message.js';
import { KometaError, toProblem } from '../core/errors.js';
import type { Encoder, EndReason, Sink } from '../core/sink.js';
import { type GapWithId, gapWithId } from '../protocol/gap.js';
import { POLL_BODY_OPEN, POLL_CONTENT_TYPE, encodePollItem, pollBodyTail } from '../protocol/long-poll.js';

/*
 * Long-poll: the request is held until there is something after the cursor
 * (or the timeout passes), then answered with one JSON body
 * (protocol/long-poll.ts) and closed, so the connection can be reused for the
 * next poll.
 */
export function pollItem(message: Message, cursor: string): string {
  return encodePollItem(message.channel, cursor, message.event, message.data);
}

export const pollEncoder: Encoder = {
  name: 'poll',
  message: (message, cursor) => Buffer.from(pollItem(message, cursor)),
};

const OPEN = Buffer.from(POLL_BODY_OPEN);

export class LongPollSink implements Sink {
  readonly encoder = pollEncoder;
  #items: Buffer[] = [];
  #gaps: GapWithId[] = [];
  #cursor: string;
  #answerScheduled = false;
  #answered = false;

  constructor(
    private readonly res: ServerResponse,
    startCursor: string,
    private readonly onAnswered: () => void,
  ) {
    this.#cursor = startCursor;
  }

  get answered(): boolean {
    return this.#answered;
  }

  push(frames: Buffer, cursor: string): void {
    if (this.#answered) return;
    this.#items.push(frames);
    this.#cursor = cursor;
    this.#scheduleAnswer();
  }

  gap(notice: GapNotice, cursor: string): void {
    if (this.#answered) return;
    this.#gaps.push(gapWithId(notice, cursor));
    this.#cursor = cursor;
    this.#scheduleAnswer();
  }

  live(cursor: string): void {
    this.#cursor = cursor;
  }

  end(reason?: EndReason, detail?: string): void {
    if (reason === 'disconnected' && !this.#answered) {
      // Answered with the error instead of messages: the client must not poll again by itself.
      this.#answered = true;
      this.onAnswered();
      if (this.res.destroyed || this.res.writableEnded) return;
      const body = JSON.stringify(toProblem(new KometaError('KOMETA_ERR_DISCONNECTED', detail)));
      this.res.writeHead(410, {
        'Content-Type': 'application/problem+json',
        'Content-Length': String(Buffer.byteLength(body)),
        'Cache-Control': 'no-store',
      });
      this.res.end(body);
      return;
    }
    this.answer();
  }

  // Answer after the current fan-out, so messages of several channels that
  // arrive in the same turn go out in one body.
  #scheduleAnswer(): void {
    if (this.#answerScheduled) return;
    this.#answerScheduled = true;
    queueMicrotask(() => this.answer());
  }

  /** Send what has been collected (possibly nothing: the timeout answer). */
  answer(): void {
    if (this.#answered) return;
    this.#answered = true;
    this.onAnswered();
    const res = this.res;
    if (res.destroyed || res.writableEnded) return;
    const parts: Buffer[] = [OPEN];
    this.#items.forEach((frames, i) => parts.push(i === 0 ? frames.subarray(1) : frames));
    parts.push(Buffer.from(pollBodyTail(this.#cursor, this.#gaps)));
    const body = Buffer.concat(parts);
    res.writeHead(200, {
      'Content-Type': POLL_CONTENT_TYPE,
      'Content-Length': String(body.length),
      'Cache-Control': 'no-store',
    });
    res.end(body);
  }
}
