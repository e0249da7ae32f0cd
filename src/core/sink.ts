import type { GapNotice, Message } from './message.js';

/**
 * Turns messages into the bytes of one transport. The hub calls it once per
 * message per group of subscribers that share a transport and a channel set,
 * and hands the same Buffer to every subscriber in the group.
 */
export interface Encoder {
  readonly name: string;
  message(message: Message, cursor: string): Buffer;
}

/** `disconnected`: the application's backend ended it (POST /disconnect); the client must not come back by itself. */
export type EndReason = 'shutdown' | 'token-expired' | 'disconnected';

/**
 * One subscriber's connection, as the hub sees it. Implemented by each
 * transport; the hub never formats bytes and a transport never looks up a
 * channel.
 */
export interface Sink {
  readonly encoder: Encoder;
  /**
   * Encoded frames (one or more messages, already in this sink's encoding),
   * the subscription's cursor after them, and the messages themselves (for
   * in-process consumers that want objects, not bytes). The sink owns
   * backpressure: when its queue is over its bound it closes its connection
   * itself.
   */
  push(frames: Buffer, cursor: string, messages: readonly Message[]): void;
  /** Messages after the cursor are gone: tell the subscriber before anything else. */
  gap(notice: GapNotice, cursor: string): void;
  /** Catch-up is over; from here on messages arrive as they are published. */
  live(cursor: string): void;
  /**
   * The subscription ends: the server is shutting down, the subscriber's credential expired, or the backend
   * disconnected it.
   */
  end(reason: EndReason, detail?: string): void;
}
