import type { ChannelHead, HistoryRead, Message } from './message.js';
import type { PresenceStore } from './presence.js';

export interface PublishOptions {
  readonly event?: string | undefined;
  /**
   * A client id whose connections live fan-out skips, on every node: the
   * engine hands it to listeners with the message (`Message.exclude`) and
   * never stores it.
   */
  readonly exclude?: string | undefined;
}

export interface ChannelStats {
  readonly epoch: string;
  readonly headSeq: number;
  readonly messages: number;
  readonly bytes: number;
  readonly oldestSeq: number;
}

export type BrokerHealth = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/**
 * Where messages are stored and how they reach every process that has
 * subscribers. The core defines it; engines (memory, Redis) implement it, so
 * the core never imports an engine.
 *
 * Contract:
 * - `publish` resolves only once the message is stored with its position;
 *   it rejects (KOMETA_ERR_BROKER_UNAVAILABLE) rather than accept a message it
 *   could not store.
 * - Messages of one channel get strictly increasing `seq` within an epoch.
 * - After `watch(channel)`, every message published on that channel, by any
 *   process, is handed to the listener, in order per channel. A listener may
 *   still see a hole (e.g. a dropped pub/sub link); the hub repairs holes from
 *   `read`, so an engine need not be perfect, only honest in `read`.
 */
export interface Broker {
  publish(channel: string, data: string, options?: PublishOptions): Promise<Message>;
  /**
   * `publish` without a promise, for an engine that stores synchronously (in
   * memory): the same message, stored and handed to the listener before it
   * returns. Optional; the hub falls back to `publish` without it.
   */
  publishNow?(channel: string, data: string, options?: PublishOptions): Message;
  /** Retained messages of `channel` after `afterSeq` in the current epoch. */
  read(channel: string, afterSeq: number): Promise<HistoryRead>;
  /** The channel's current epoch and last sequence (creating the epoch if the channel is new). */
  head(channel: string): Promise<ChannelHead>;
  stats(channel: string): Promise<ChannelStats>;
  setListener(listener: (message: Message) => void): void;
  watch(channel: string): void;
  unwatch(channel: string): void;
  health(): BrokerHealth;
  /**
   * Record `key` as used for `ttlMs`: true the first time, false while it is
   * still recorded. Optional; a broker shared by several processes provides
   * it so that single-use things (subscribe tickets) are single-use everywhere.
   */
  claimOnce?(key: string, ttlMs: number): Promise<boolean>;
  /**
   * Where members are kept when several processes share this broker (Redis:
   * every node sees the same members). Optional: without it the hub keeps
   * members in process, which is right for a broker only one process uses.
   */
  presenceStore?(): PresenceStore;
  /** Periodic housekeeping (trim aged history, forget unused channels); optional. */
  sweep?(isWatched: (channel: string) => boolean): void;
  close(): Promise<void>;
}
