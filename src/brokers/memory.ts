import { createHash } from 'node:crypto';
import type { Broker, BrokerHealth, ChannelStats, PublishOptions } from '../core/broker.js';
import { type Clock, systemClock } from '../core/clock.js';
import { formatId } from '../core/cursor.js';
import { newEpoch } from '../core/epoch.js';
import { History, type HistoryLimits, defaultHistoryLimits } from '../core/history.js';
import type { ChannelHead, HistoryRead, Message } from '../core/message.js';

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
}

export const DEFAULT_MAX_TOTAL_HISTORY_BYTES = 256 * 1024 * 1024;

/**
 * The embedded default: everything in this process.
 *
 * Epochs: a channel's epoch is derived from a random token of this broker
 * instance and the channel's name, so a cursor from a previous run of the
 * process (whose history is gone) is recognised and answered with a gap, and
 * subscribing to a channel nobody has published to stores nothing at all — a
 * flood of subscribers to made-up names costs no memory here. A channel that
 * has been published to keeps its head (a few dozen bytes) for the life of the
 * process, so its sequence numbers never restart under the same epoch.
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
  }

  #epochOf(name: string): string {
    const digest = createHash('sha256').update(this.#instance).update('\u0000').update(name).digest();
    return digest.readBigUInt64BE(0).toString(36).slice(0, 10);
  }

  #channel(name: string): StoredChannel {
    let channel = this.#channels.get(name);
    if (channel === undefined) {
      channel = { epoch: this.#epochOf(name), headSeq: 0, history: new History(this.#limits) };
      this.#channels.set(name, channel);
    }
    return channel;
  }

  /** Apply a change to one channel's history and keep the totals in step. */
  #account(channel: StoredChannel, change: () => void): void {
    const bytes = channel.history.bytes;
    const length = channel.history.length;
    change();
    this.#totalBytes += channel.history.bytes - bytes;
    this.#totalMessages += channel.history.length - length;
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
      if (this.#retained(message)) {
        const channel = this.#channels.get(message.channel)!;
        this.#account(channel, () => channel.history.dropOldest());
      }
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
    const channel = this.#channel(channelName);
    const now = this.#clock.now();
    const seq = ++channel.headSeq;
    const message: Message = {
      channel: channelName,
      epoch: channel.epoch,
      seq,
      id: formatId(channelName, channel.epoch, seq),
      event: options.event,
      data,
      time: now,
      size: Buffer.byteLength(data),
    };
    this.#account(channel, () => channel.history.append(message, now));
    this.#all.push(message);
    this.#enforceTotal();
    // Local fan-out happens before publish resolves, so a publisher that awaits
    // publish and then reads the channel's state sees its message delivered.
    this.#listener(message);
    return message;
  }

  async read(channelName: string, afterSeq: number): Promise<HistoryRead> {
    const channel = this.#channels.get(channelName);
    if (channel === undefined) return { epoch: this.#epochOf(channelName), messages: [], oldestSeq: 1, headSeq: 0 };
    this.#account(channel, () => channel.history.trim(this.#clock.now()));
    return {
      epoch: channel.epoch,
      messages: channel.history.after(afterSeq),
      oldestSeq: channel.history.oldestSeq ?? channel.headSeq + 1,
      headSeq: channel.headSeq,
    };
  }

  async head(channelName: string): Promise<ChannelHead> {
    const channel = this.#channels.get(channelName);
    return { epoch: channel?.epoch ?? this.#epochOf(channelName), seq: channel?.headSeq ?? 0 };
  }

  async stats(channelName: string): Promise<ChannelStats> {
    const channel = this.#channels.get(channelName);
    if (channel === undefined) return { epoch: this.#epochOf(channelName), headSeq: 0, messages: 0, bytes: 0, oldestSeq: 1 };
    this.#account(channel, () => channel.history.trim(this.#clock.now()));
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
    for (const channel of this.#channels.values()) this.#account(channel, () => channel.history.trim(now));
    this.#enforceTotal();
  }

  /** Channels that have been published to in this process. */
  get channelCount(): number {
    return this.#channels.size;
  }

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
