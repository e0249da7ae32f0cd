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
  lastActivity: number;
}

export interface MemoryBrokerOptions {
  readonly history?: Partial<HistoryLimits>;
  readonly clock?: Clock;
}

/**
 * The embedded default: everything in this process. Each channel gets a new
 * random epoch when it is first used, so cursors from a previous run of the
 * process (whose history is gone) are recognised and answered with a gap.
 */
export class MemoryBroker implements Broker {
  readonly #channels = new Map<string, StoredChannel>();
  readonly #limits: HistoryLimits;
  readonly #clock: Clock;
  #listener: (message: Message) => void = () => {};

  constructor(options: MemoryBrokerOptions = {}) {
    this.#limits = { ...defaultHistoryLimits, ...options.history };
    this.#clock = options.clock ?? systemClock;
  }

  #channel(name: string): StoredChannel {
    let channel = this.#channels.get(name);
    if (channel === undefined) {
      channel = { epoch: newEpoch(), headSeq: 0, history: new History(this.#limits), lastActivity: this.#clock.now() };
      this.#channels.set(name, channel);
    }
    return channel;
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
    channel.history.append(message, now);
    channel.lastActivity = now;
    // Local fan-out happens before publish resolves, so a publisher that awaits
    // publish and then reads the channel's state sees its message delivered.
    this.#listener(message);
    return message;
  }

  async read(channelName: string, afterSeq: number): Promise<HistoryRead> {
    const channel = this.#channel(channelName);
    channel.history.trim(this.#clock.now());
    return {
      epoch: channel.epoch,
      messages: channel.history.after(afterSeq),
      oldestSeq: channel.history.oldestSeq ?? channel.headSeq + 1,
      headSeq: channel.headSeq,
    };
  }

  async head(channelName: string): Promise<ChannelHead> {
    const channel = this.#channel(channelName);
    return { epoch: channel.epoch, seq: channel.headSeq };
  }

  async stats(channelName: string): Promise<ChannelStats> {
    const channel = this.#channel(channelName);
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

  /**
   * Trim aged history and forget channels that have nothing left and nobody
   * watching, so memory follows what is in use. `isWatched` comes from the hub.
   */
  sweep(isWatched: (channel: string) => boolean): void {
    const now = this.#clock.now();
    for (const [name, channel] of this.#channels) {
      channel.history.trim(now);
      if (channel.history.length === 0 && !isWatched(name) && now - channel.lastActivity > this.#limits.maxAgeMs) {
        this.#channels.delete(name);
      }
    }
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  async close(): Promise<void> {
    this.#channels.clear();
  }
}
