import type { Position } from './cursor.js';

/** One published message. Immutable once created; shared by history and every subscriber. */
export interface Message extends Position {
  readonly channel: string;
  /** The message's id on the wire: `channel~epoch~seq`, computed once. */
  readonly id: string;
  readonly event: string | undefined;
  /** UTF-8 text; JSON is the common case but kometa never parses it. */
  readonly data: string;
  /** Publish time, milliseconds since 1970. */
  readonly time: number;
  /** Bytes of `data` in UTF-8, for history limits. */
  readonly size: number;
  /**
   * The client id its publisher asked to skip (`Kometa-Exclude-Client`), on
   * the copy handed to live fan-out only: history never holds it, so a
   * resuming client (the excluded one too) gets the message like any other.
   */
  readonly exclude?: string | undefined;
}

/** The live copy of a stored message that skips `exclude`'s connections; the message itself when none. */
export function withExclude<M extends Message>(message: M, exclude: string | undefined): M {
  return exclude === undefined ? message : { ...message, exclude };
}

export type { GapNotice, GapReason } from '../protocol/gap.js';

/** What a broker can say about a channel. `seq` 0 means no message yet in this epoch. */
export interface ChannelHead extends Position {}

export interface HistoryRead {
  /** The channel's current epoch. */
  readonly epoch: string;
  /** Retained messages with seq greater than the one asked for, oldest first. */
  readonly messages: readonly Message[];
  /** Sequence of the oldest retained message, or head + 1 when history is empty. */
  readonly oldestSeq: number;
  /** Sequence of the newest message ever published in this epoch. */
  readonly headSeq: number;
}
