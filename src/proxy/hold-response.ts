import type { GapNotice, Message } from '../core/message.js';
import type { Encoder, Sink } from '../core/sink.js';
import { type ProxyItem, itemOf } from './items.js';

const EMPTY = Buffer.alloc(0);

/**
 * A response hold answers with one whole HTTP response built from the
 * message's `http-response` format, so it needs no bytes from the hub: the
 * encoder is a constant and the sink reads the messages.
 */
export const heldResponseEncoder: Encoder = {
  name: 'grip-response',
  message: () => EMPTY,
};

export type HeldResponse = NonNullable<ProxyItem['response']>;

/**
 * GRIP `Grip-Hold: response`: the first message on any of the channels that
 * has an `http-response` format (or is a plain message) answers the request;
 * items with only other formats pass it by, as in Pushpin.
 */
export class HeldResponseSink implements Sink {
  readonly encoder = heldResponseEncoder;
  #done = false;

  constructor(
    private readonly onAnswer: (response: HeldResponse) => void,
    private readonly onShutdown: () => void,
  ) {}

  push(_frames: Buffer, _cursor: string, messages: readonly Message[]): void {
    if (this.#done) return;
    for (const message of messages) {
      const response = itemOf(message).response;
      if (response === undefined) continue;
      this.#done = true;
      this.onAnswer(response);
      return;
    }
  }

  /** A long-poll client has no way to hear of a gap in its own protocol; what history still holds answers it. */
  gap(_notice: GapNotice): void {}

  live(): void {}

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.onShutdown();
  }
}
