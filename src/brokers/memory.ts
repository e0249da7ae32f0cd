import type { Broker, BrokerHealth, ChannelStats, PublishOptions } from '../core/broker.js';
import { type Clock, systemClock } from '../core/clock.js';
import { formatId } from '../core/cursor.js';
import { newEpoch } from '../core/epoch.js';
import { History, type HistoryLimits, defaultHistoryLimits } from '../core/history.js';
import { type ChannelHead, type HistoryRead, type Message, withExclude } from '../core/message.js';

interface StoredChannel {
  readonly epoch: string;
  headSeq: number;
  readonly history: History;
}

export interface MemoryBrokerOptions {
  readonly history?: Partial<HistoryLimits>;
  /** Bytes of message data kept across all channels; the oldest messages anywhere go first. */
  readonly maxTotalBytes?: number;
  readonly clock?: Clock;
  /**
   * For a store that keeps the same messages on disk (the durable broker):
   * what one message costs against maxTotalBytes (default: its data bytes),
   * the epoch of a channel not stored yet (default: from this instance's
   * random token, so new in every process), and a hook that hears of every
   * message let go of, so the store can reclaim its space.
   */
  readonly totalSizeOf?: (message: Message) => number;
  readonly epochOf?: (channel: string) => string;
  readonly onDrop?: (message: Message) => void;
}

export const DEFAULT_MAX_TOTAL_HISTORY_BYTES = 256 * 1024 * 1024;

/**
 * The in-memory engine (`--memory`), and the index the durable broker keeps
 * of what it has on disk.
 *
 * Epochs: a channel that has not been stored is in this broker instance's
 * epoch, a random token drawn once (the same for every channel: a cursor entry
 * names its channel, so nothing needs the epochs of two channels to differ,
 * and a new channel costs no hashing). A cursor from a previous run of the
 * process (whose history is gone) is recognised and answered with a gap, and
 * subscribing to a channel nobody has published to stores nothing at all — a
 * flood of subscribers to made-up names costs no memory here. A channel that
 * has been published to keeps its head (a few dozen bytes) until `forget`,
 * so its sequence numbers never restart under the same epoch.
 *
 * Memory: history is bounded per channel (count, bytes, age) and in total
 * (maxTotalBytes): all messages sit in one queue in publish order, so the
 * oldest message anywhere is dropped first when the total is passed.
 */
export class MemoryBroker implements Broker {
  readonly #channels = new Map<string, StoredChannel>();
  readonly #limits: HistoryLimits;
  readonly #maxTotalBytes: number;
  readonly #clock: Clock;
  readonly #instance = newEpoch();
  readonly #sizeOf: (message: Message) => number;
  readonly #epochOverride: ((channel: string) => string) | undefined;
  readonly #onDropHook: ((message: Message) => void) | undefined;
  /** Bound once: every channel's history reports drops here, to keep the totals. */
  readonly #onDrop = (message: Message): void => {
    this.#totalBytes -= this.#sizeOf(message);
    this.#totalMessages--;
    this.#onDropHook?.(message);
  };
  #listener: (message: Message) => void = () => {};
  /** Every retained message in publish order (plus some already trimmed, pruned lazily). */
  #all: Message[] = [];
  #allStart = 0;
  #totalBytes = 0;
  #totalMessages = 0;

  constructor(options: MemoryBrokerOptions = {}) {
    this.#limits = { ...defaultHistoryLimits, ...options.history };
    this.#maxTotalBytes = options.maxTotalBytes ?? DEFAULT_MAX_TOTAL_HISTORY_BYTES;
    this.#clock = options.clock ?? systemClock;
    this.#sizeOf = options.totalSizeOf ?? ((message) => message.size);
    this.#epochOverride = options.epochOf;
    this.#onDropHook = options.onDrop;
  }

  #epochOf(name: string): string {
    return this.#epochOverride !== undefined ? this.#epochOverride(name) : this.#instance;
  }

  #channel(name: string, epoch?: string): StoredChannel {
    let channel = this.#channels.get(name);
    if (channel === undefined) {
      channel = { epoch: epoch ?? this.#epochOf(name), headSeq: 0, history: new History(this.#limits, this.#onDrop) };
      this.#channels.set(name, channel);
    }
    return channel;
  }

  #retained(message: Message): boolean {
    const oldest = this.#channels.get(message.channel)?.history.oldestSeq;
    return oldest !== undefined && message.seq >= oldest;
  }

  #enforceTotal(): void {
    while (this.#totalBytes > this.#maxTotalBytes && this.#allStart < this.#all.length) {
      const message = this.#all[this.#allStart]!;
      this.#all[this.#allStart++] = undefined as unknown as Message;
      // Older messages of its channel were queued earlier, so if it is still
      // retained it is its channel's oldest.
      if (this.#retained(message)) this.#channels.get(message.channel)!.history.dropOldest();
    }
    const live = this.#all.length - this.#allStart;
    // Messages trimmed by their channel's own limits linger in the queue; drop
    // them once they outnumber the retained ones, so the queue stays O(retained).
    if (live > 2 * this.#totalMessages + 1024) {
      this.#all = this.#all.slice(this.#allStart).filter((m) => this.#retained(m));
      this.#allStart = 0;
    } else if (this.#allStart > 1024 && this.#allStart * 2 > this.#all.length) {
      this.#all = this.#all.slice(this.#allStart);
      this.#allStart = 0;
    }
  }

  async publish(channelName: string, data: string, options: PublishOptions = {}): Promise<Message> {
    return this.publishNow(channelName, data, options);
  }

  /** Store and hand on at once: nothing here waits, so a publish needs no promise (see Hub.publishNow). */
  publishNow(channelName: string, data: string, options: PublishOptions = {}): Message {
    const channel = this.#channel(channelName);
    const seq = channel.headSeq + 1;
    const message: Message = {
      channel: channelName,
      epoch: channel.epoch,
      seq,
      id: formatId(channelName, channel.epoch, seq),
      event: options.event,
      data,
      time: this.#clock.now(),
      size: Buffer.byteLength(data),
    };
    this.adopt(message, message.time);
    // Local fan-out happens before publish resolves, so a publisher that awaits
    // publish and then reads the channel's state sees its message delivered.
    this.#listener(withExclude(message, options.exclude));
    return message;
  }

  /**
   * Keep a message that already has its position (the durable broker's
   * committed writes, and what it reads back at start-up): it becomes the
   * channel's head. Its listener is not called. A message of another epoch
   * than the channel's starts the channel afresh (a new lifetime on disk).
   */
  adopt(message: Message, now = this.#clock.now()): void {
    let channel = this.#channel(message.channel, message.epoch);
    if (channel.epoch !== message.epoch) {
      this.forget(message.channel);
      channel = this.#channel(message.channel, message.epoch);
    }
    channel.headSeq = message.seq;
    this.#totalBytes += this.#sizeOf(message);
    this.#totalMessages++;
    channel.history.append(message, now);
    this.#all.push(message);
    this.#enforceTotal();
  }

  /** Set a channel's head without a message (its messages are all gone, its position is not). */
  adoptHead(channelName: string, epoch: string, seq: number): void {
    let channel = this.#channel(channelName, epoch);
    if (channel.epoch !== epoch) {
      this.forget(channelName);
      channel = this.#channel(channelName, epoch);
    }
    if (seq > channel.headSeq && channel.history.length === 0) channel.headSeq = seq;
  }

  /**
   * The head sequence of a stored channel in `epoch`; undefined when not stored, or in another epoch. Allocates
   * nothing.
   */
  headSeqIn(channelName: string, epoch: string): number | undefined {
    const channel = this.#channels.get(channelName);
    return channel !== undefined && channel.epoch === epoch ? channel.headSeq : undefined;
  }

  /** The channel's head now, without waiting (the durable broker numbers its pending writes from it). */
  headNow(channelName: string): ChannelHead {
    const channel = this.#channels.get(channelName);
    return { epoch: channel?.epoch ?? this.#epochOf(channelName), seq: channel?.headSeq ?? 0 };
  }

  /** How many messages a channel retains now. */
  retainedCount(channelName: string): number {
    return this.#channels.get(channelName)?.history.length ?? 0;
  }

  /** Drop a channel and everything it retains; its next message starts at 1 in the epoch `epochOf` gives then. */
  forget(channelName: string): void {
    const channel = this.#channels.get(channelName);
    if (channel === undefined) return;
    while (channel.history.length > 0) channel.history.dropOldest();
    this.#channels.delete(channelName);
  }

  /** Every stored channel: name, epoch, head and how many messages it retains. */
  *channels(): IterableIterator<{ name: string; epoch: string; headSeq: number; retained: number }> {
    for (const [name, channel] of this.#channels) {
      yield { name, epoch: channel.epoch, headSeq: channel.headSeq, retained: channel.history.length };
    }
  }

  /** Every retained message, channel by channel, oldest first within each. */
  *retained(): IterableIterator<Message> {
    for (const channel of this.#channels.values()) yield* channel.history.after(0);
  }

  async read(channelName: string, afterSeq: number): Promise<HistoryRead> {
    const channel = this.#channels.get(channelName);
    if (channel === undefined) return { epoch: this.#epochOf(channelName), messages: [], oldestSeq: 1, headSeq: 0 };
    channel.history.trim(this.#clock.now());
    return {
      epoch: channel.epoch,
      messages: channel.history.after(afterSeq),
      oldestSeq: channel.history.oldestSeq ?? channel.headSeq + 1,
      headSeq: channel.headSeq,
    };
  }

  async head(channelName: string): Promise<ChannelHead> {
    return this.headNow(channelName);
  }

  async stats(channelName: string): Promise<ChannelStats> {
    const channel = this.#channels.get(channelName);
    if (channel === undefined)
      return { epoch: this.#epochOf(channelName), headSeq: 0, messages: 0, bytes: 0, oldestSeq: 1 };
    channel.history.trim(this.#clock.now());
    return {
      epoch: channel.epoch,
      headSeq: channel.headSeq,
      messages: channel.history.length,
      bytes: channel.history.bytes,
      oldestSeq: channel.history.oldestSeq ?? channel.headSeq + 1,
    };
  }

  setListener(listener: (message: Message) => void): void {
    this.#listener = listener;
  }

  // Every message already reaches the one listener in this process.
  watch(): void {}
  unwatch(): void {}

  health(): BrokerHealth {
    return { ok: true };
  }

  /** Trim aged history everywhere, so an idle channel does not keep stale messages. */
  sweep(): void {
    const now = this.#clock.now();
    for (const channel of this.#channels.values()) channel.history.trim(now);
    this.#enforceTotal();
  }

  /** Channels that have been published to in this process. */
  get channelCount(): number {
    return this.#channels.size;
  }

  /** What the retained messages cost against maxTotalBytes. */
  get totalBytes(): number {
    return this.#totalBytes;
  }

  async close(): Promise<void> {
    this.#channels.clear();
    this.#all = [];
    this.#allStart = 0;
    this.#totalBytes = 0;
    this.#totalMessages = 0;
  }
}
