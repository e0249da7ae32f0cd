import type { Message } from './message.js';

/**
 * Limits on what one channel keeps. The oldest messages go first when any
 * limit is passed; age is enforced on every append and by the hub's sweep, so
 * an idle channel does not keep stale messages forever.
 */
export interface HistoryLimits {
  /** Most messages kept per channel. */
  readonly maxMessages: number;
  /** Most bytes of message data kept per channel. */
  readonly maxBytes: number;
  /** Oldest message kept, in milliseconds. */
  readonly maxAgeMs: number;
}

export const defaultHistoryLimits: HistoryLimits = {
  maxMessages: 1000,
  maxBytes: 1024 * 1024,
  maxAgeMs: 60 * 60 * 1000,
};

/**
 * A bounded, append-only run of messages with consecutive sequence numbers.
 * Stored as an array with a moving start so that trimming the oldest message
 * is O(1); the array is compacted only when the dead prefix is large.
 */
export class History {
  #items: Message[] = [];
  #start = 0;
  #bytes = 0;

  /**
   * `onDrop` hears of every message this history lets go of (trimmed by a
   * limit or dropped for the broker's total), so a store that keeps the same
   * messages elsewhere (on disk) can account for the space they free.
   */
  constructor(
    private readonly limits: HistoryLimits,
    private readonly onDrop?: (message: Message) => void,
  ) {}

  get length(): number {
    return this.#items.length - this.#start;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Sequence of the oldest retained message, or undefined when empty. */
  get oldestSeq(): number | undefined {
    return this.#items[this.#start]?.seq;
  }

  append(message: Message, now: number): void {
    this.#items.push(message);
    this.#bytes += message.size;
    this.trim(now);
  }

  /** Drop what is over the limits. Always keeps at most maxMessages, even when that is 0. */
  trim(now: number): void {
    const { maxMessages, maxBytes, maxAgeMs } = this.limits;
    const oldestAllowed = now - maxAgeMs;
    while (this.length > 0) {
      const oldest = this.#items[this.#start]!;
      if (this.length > maxMessages || this.#bytes > maxBytes || oldest.time < oldestAllowed) {
        this.#items[this.#start] = undefined as unknown as Message;
        this.#start++;
        this.#bytes -= oldest.size;
        this.onDrop?.(oldest);
      } else {
        break;
      }
    }
    if (this.#start > 1024 && this.#start * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#start);
      this.#start = 0;
    }
  }

  /** Drop the oldest message (the broker's total-bytes limit picks which channel). */
  dropOldest(): void {
    const oldest = this.#items[this.#start];
    if (oldest === undefined) return;
    this.#items[this.#start] = undefined as unknown as Message;
    this.#start++;
    this.#bytes -= oldest.size;
    this.onDrop?.(oldest);
  }

  /** Messages with seq > afterSeq, oldest first. Sequences are consecutive, so this is an index, not a search. */
  after(afterSeq: number): Message[] {
    const oldest = this.oldestSeq;
    if (oldest === undefined) return [];
    const from = Math.max(0, afterSeq - oldest + 1);
    return this.#items.slice(this.#start + from);
  }
}
