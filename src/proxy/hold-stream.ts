import type { GapNotice, Message } from '../core/message.js';
import type { Encoder, Sink } from '../core/sink.js';
import type { GripChannel } from './instructions.js';
import { itemOf } from './items.js';

const EMPTY = Buffer.alloc(0);

/**
 * A stream hold writes each message's `http-stream` content as it is (or a
 * plain message's data). Encoded once per message for every held stream on
 * the same channels, and written as the same Buffer to each.
 */
export const heldStreamEncoder: Encoder = {
  name: 'grip-stream',
  message: (message) => itemOf(message).stream?.content ?? EMPTY,
};

export interface StreamOutput {
  write(bytes: Buffer): void;
  /** `action: close`, or the hub shutting down: finish the response. */
  end(): void;
  /** Ask the origin's next link what to send (Pushpin's reliable streaming); only called when there is one. */
  recover(reason: 'gap' | 'hint' | 'history'): void;
}

/**
 * GRIP `Grip-Hold: stream`. Sequence ids: when an item's `prev-id` is not the
 * id of the item before it on that channel, something was missed; with a
 * `Grip-Link: <…>; rel=next` the stream asks the origin (which knows what was
 * sent) via that link, as Pushpin does, and otherwise delivers on.
 */
export class HeldStreamSink implements Sink {
  readonly encoder = heldStreamEncoder;
  readonly #lastIds: Map<string, string | undefined>;
  #done = false;

  constructor(
    private readonly out: StreamOutput,
    channels: readonly GripChannel[],
    private readonly canRecover: boolean,
  ) {
    this.#lastIds = new Map(channels.map((c) => [c.name, c.prevId]));
  }

  push(frames: Buffer, _cursor: string, messages: readonly Message[]): void {
    if (this.#done) return;
    // `frames` is the encoder's output for `messages`, in order: offsets let
    // the common case write it whole and the rare one cut it at an item.
    let offset = 0;
    for (const message of messages) {
      const item = itemOf(message);
      const stream = item.stream;
      if (stream === undefined) continue;
      let special: 'close' | 'hint' | 'gap' | undefined;
      if (item.kind === 'grip') {
        const last = this.#lastIds.get(message.channel);
        if (item.prevId !== undefined && last !== undefined && item.prevId !== last && this.canRecover) special = 'gap';
        this.#lastIds.set(message.channel, item.id);
      }
      if (stream.action === 'close') special = 'close';
      else if (stream.action === 'hint' && this.canRecover) special = 'hint';
      if (special !== undefined) {
        if (offset > 0) this.out.write(frames.subarray(0, offset));
        this.#done = true;
        if (special === 'close') this.out.end();
        else this.out.recover(special);
        return;
      }
      offset += stream.content.length;
    }
    if (frames.length > 0) this.out.write(frames);
  }

  gap(_notice: GapNotice): void {
    if (this.#done || !this.canRecover) return;
    this.#done = true;
    this.out.recover('history');
  }

  live(): void {}

  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.out.end();
  }
}
