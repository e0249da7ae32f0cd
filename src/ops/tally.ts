import {
  type ErrorEvent,
  type FanOutEvent,
  type SubscriberDropEvent,
  errorChannel,
  fanOutChannel,
  subscriberDropChannel,
} from '../core/diagnostics.js';

/**
 * Counts what the library reports on its diagnostics channels: errors by
 * code, slow consumers closed by transport, and per fan-out (never per
 * subscriber) messages by channel plus latency. The channels are
 * process-wide, so one tally sees every hub in the process.
 */
export class Tally {
  readonly errors = new Map<string, number>();
  readonly drops = new Map<string, number>();
  /** Messages fanned out per channel since the last `takeChannelMessages()`. */
  #channelMessages = new Map<string, number>();
  /**
   * Count messages per channel (for the dashboard's hot channels): only while
   * someone watches, since with one message to each of 10,000 channels the
   * map takes 10,000 new keys a second that nobody reads (see Sampler).
   */
  countChannels = false;
  readonly #fanOutListeners = new Set<(event: FanOutEvent) => void>();
  readonly #dropListeners = new Set<(event: SubscriberDropEvent) => void>();
  readonly #onError = (message: unknown) => {
    const event = message as ErrorEvent;
    this.errors.set(event.code, (this.errors.get(event.code) ?? 0) + 1);
  };
  readonly #onDrop = (message: unknown) => {
    const event = message as SubscriberDropEvent;
    this.drops.set(event.transport, (this.drops.get(event.transport) ?? 0) + 1);
    for (const listener of this.#dropListeners) listener(event);
  };
  readonly #onFanOut = (message: unknown) => {
    const event = message as FanOutEvent;
    if (this.countChannels) {
      this.#channelMessages.set(event.channel, (this.#channelMessages.get(event.channel) ?? 0) + event.messages);
    }
    for (const listener of this.#fanOutListeners) listener(event);
  };

  constructor() {
    errorChannel.subscribe(this.#onError);
    subscriberDropChannel.subscribe(this.#onDrop);
    fanOutChannel.subscribe(this.#onFanOut);
  }

  get dropTotal(): number {
    let total = 0;
    for (const n of this.drops.values()) total += n;
    return total;
  }

  onFanOut(listener: (event: FanOutEvent) => void): void {
    this.#fanOutListeners.add(listener);
  }

  onDrop(listener: (event: SubscriberDropEvent) => void): void {
    this.#dropListeners.add(listener);
  }

  /** Messages per channel since the previous call (for "hot channels"). */
  takeChannelMessages(): Map<string, number> {
    const taken = this.#channelMessages;
    this.#channelMessages = new Map();
    return taken;
  }

  close(): void {
    errorChannel.unsubscribe(this.#onError);
    subscriberDropChannel.unsubscribe(this.#onDrop);
    fanOutChannel.unsubscribe(this.#onFanOut);
    this.#fanOutListeners.clear();
    this.#dropListeners.clear();
  }
}
