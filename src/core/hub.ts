import { EventEmitter } from 'node:events';
import type { Broker, ChannelStats, PublishOptions } from './broker.js';
import { assertChannelName, assertEventName, isValidClientId } from './channel-name.js';
import { fanOutChannel } from './diagnostics.js';
import { type Cursor, type Position, formatId } from './cursor.js';
import { wallClock } from './clock.js';
import { KometaError } from './errors.js';
import { isWellFormed } from './text.js';
import type { GapNotice, HistoryRead, Message } from './message.js';
import type { Encoder, Sink } from './sink.js';
import {
  LocalPresenceStore,
  type Member,
  type MemberIdentity,
  type PresenceEvent,
  type PresenceOptions,
  PresenceTracker,
  defaultPresenceOptions,
  newClientId,
} from './presence.js';
import { presenceChannel } from './diagnostics.js';
import { PRESENCE_EVENTS, encodePresenceData, presenceKindOf } from '../protocol/presence.js';

export interface HubLimits {
  /** Most channels one subscription may follow. */
  readonly maxChannelsPerSubscription: number;
  /** Largest message data, in bytes of UTF-8. */
  readonly maxMessageBytes: number;
}

export const defaultHubLimits: HubLimits = {
  maxChannelsPerSubscription: 64,
  maxMessageBytes: 64 * 1024,
};

export interface PublishResult {
  readonly message: Message;
  /** Members of the channel in the whole cluster (this process's subscriptions when presence is off). */
  readonly subscribers: number;
}

export interface HubCounters {
  published: number;
  /** Messages handed to subscribers (one per subscriber per message). */
  delivered: number;
  subscriptionsOpened: number;
  subscriptionsClosed: number;
  gaps: number;
  /** Bytes of message data accepted by publish. */
  publishedBytes: number;
  /** Bytes handed to subscriber connections by live fan-out (counted once per group, times its size). */
  deliveredBytes: number;
}

/** One channel with subscribers in this process, as the operator's view lists it. */
export interface LocalChannelSummary {
  readonly name: string;
  readonly subscribers: number;
  /** Messages fanned out here since the channel got its first local subscriber. */
  readonly messages: number;
}

/**
 * Subscribers of the same channel set on the same transport see exactly the
 * same bytes for every live message (the cursor after a message is the same
 * for all of them), so they form a group and a message is encoded once per
 * group.
 */
class Group {
  readonly members = new Set<Subscription>();
  constructor(
    readonly key: string,
    readonly encoder: Encoder,
    /** Sorted by name, so the cursor lists channels in one order. */
    readonly channels: readonly LocalChannel[],
    /** Its members asked for in-band join and leave; a plain group skips them without looking at its members. */
    readonly presence: boolean,
  ) {}

  cursorAfter(channel: LocalChannel, message: Message): string {
    if (this.channels.length === 1) return message.id;
    let text = '';
    for (const other of this.channels) {
      if (text !== '') text += ',';
      text += other === channel ? message.id : formatId(other.name, other.epoch, other.deliveredSeq);
    }
    return text;
  }
}

/** This process's view of a channel that has local subscribers. */
class LocalChannel {
  epoch = '';
  /** Highest sequence handed to every live subscriber of this channel here. */
  deliveredSeq = 0;
  /** Messages from the broker not yet fanned out (flushed once per event-loop turn). */
  pending: Message[] = [];
  repairing = false;
  readonly groups = new Set<Group>();
  /** Subscriptions that are resuming from history and receive messages one by one. */
  readonly catchingUp = new Set<Subscription>();
  subscriberCount = 0;
  /** Messages fanned out (counted per fan-out, not per subscriber). */
  messageCount = 0;
  readonly ready: Promise<void>;

  constructor(
    readonly name: string,
    broker: Broker,
  ) {
    broker.watch(name);
    this.ready = broker.head(name).then((head) => {
      this.epoch = head.epoch;
      this.deliveredSeq = head.seq;
      // Anything the broker passed on before we knew the head is either
      // already counted in it or newer; keep only the newer.
      this.pending = this.pending.filter((m) => m.epoch !== head.epoch || m.seq > head.seq);
    });
  }
}

type SubscriptionState = 'resolving' | 'ready' | 'catching-up' | 'live' | 'closed';

/**
 * One subscriber following one or more channels. Created by `Hub.subscribe`
 * (which resolves the cursor against history and may reject with a 400),
 * then started with a sink once the transport is ready to write.
 */
export class Subscription {
  /** @internal */
  state: SubscriptionState = 'resolving';
  /** @internal */
  sink: Sink | undefined;
  /** @internal */
  group: Group | undefined;
  /** Where this subscriber is, per channel. */
  readonly positions = new Map<string, Position>();
  /** Gaps to report and retained messages to replay, found while resolving. */
  readonly backlog: { gaps: GapNotice[]; messages: Message[] } = { gaps: [], messages: [] };
  /** Live messages that arrived while resolving or catching up. */
  /** @internal */
  buffered: Message[] = [];
  /**
   * When the subscriber's credential stops being valid (wall clock, ms since
   * 1970), if it does. Checked before every write, so nothing is delivered
   * after it even while the sweep that ends idle subscriptions is still due.
   */
  /** @internal */
  expiresAt: number | undefined;
  /** Who it is, for presence; none for a subscription made without one (it is then nobody's member). */
  /** @internal */
  member: MemberIdentity | undefined;
  /** The id its client gave itself (`client=`): a publish that excludes it skips this subscriber. */
  /** @internal */
  client: string | undefined;

  constructor(
    private readonly hub: Hub,
    readonly channels: readonly LocalChannel[],
    /** It asked for in-band join and leave (`?presence=1`); others never see them. */
    readonly wantsPresence = false,
  ) {}

  get channelNames(): string[] {
    return this.channels.map((c) => c.name);
  }

  cursor(): string {
    let text = '';
    for (const channel of this.channels) {
      if (text !== '') text += ',';
      // A live subscriber is always level with the channel, so live fan-out
      // need not record a position per subscriber per message.
      if (this.state === 'live') {
        text += formatId(channel.name, channel.epoch, channel.deliveredSeq);
      } else {
        const position = this.positions.get(channel.name)!;
        text += formatId(channel.name, position.epoch, position.seq);
      }
    }
    return text;
  }

  /** Begin delivering: the backlog first, then live messages. */
  start(sink: Sink): void {
    if (this.state !== 'ready') return;
    this.sink = sink;
    this.state = 'catching-up';
    this.hub.catchUp(this);
  }

  close(): void {
    this.hub.unsubscribe(this);
  }
}

/**
 * The fan-out engine: it keeps, per channel, who is subscribed in this
 * process, resolves cursors against the broker's history, and delivers each
 * message to every subscriber in order, once. No node:http in here.
 */
export class Hub extends EventEmitter<{ [E in PresenceEvent['event']]: [PresenceEvent] }> {
  readonly limits: HubLimits;
  /** Members of this process's subscriptions, kept in the broker's presence store; undefined when presence is off. */
  readonly presence: PresenceTracker | undefined;
  readonly #counters: HubCounters = {
    published: 0,
    delivered: 0,
    subscriptionsOpened: 0,
    subscriptionsClosed: 0,
    gaps: 0,
    publishedBytes: 0,
    deliveredBytes: 0,
  };
  /** Running totals since start, read by /metrics and the dashboard; only the hub counts. */
  get counters(): Readonly<HubCounters> {
    return this.#counters;
  }
  readonly #channels = new Map<string, LocalChannel>();
  readonly #groups = new Map<string, Group>();
  #dirty: LocalChannel[] = [];
  #flushScheduled = false;
  #closed = false;
  readonly #live = new Set<Subscription>();
  /** Publishes handed to the broker and not yet settled: a drain waits for them. */
  readonly #storing = new Set<Promise<Message>>();
  /** Joins and leaves are published in-band (presence on, and `events` asked for). */
  readonly #inBandPresence: boolean;

  constructor(
    readonly broker: Broker,
    limits: Partial<HubLimits> = {},
    presence: Partial<PresenceOptions> = {},
  ) {
    super();
    this.limits = { ...defaultHubLimits, ...limits };
    broker.setListener((message) => this.#onBrokerMessage(message));
    const presenceOptions = { ...defaultPresenceOptions, ...presence };
    this.#inBandPresence = presenceOptions.enabled && presenceOptions.events;
    this.presence = presenceOptions.enabled
      ? new PresenceTracker(
          broker.presenceStore?.() ?? new LocalPresenceStore(),
          presenceOptions,
          (event) => this.#onPresence(event),
          // The store is unreachable (Redis down): the member is missing from counts until it comes back.
          () => {},
        )
      : undefined;
  }

  /** Join, leave, occupied, vacated: emitted once per cluster, by the process whose change made it. */
  #onPresence(event: PresenceEvent): void {
    if (presenceChannel.hasSubscribers) presenceChannel.publish(event);
    if (this.#inBandPresence && event.member !== undefined && (event.event === 'join' || event.event === 'leave')) {
      this.#publishPresence(event.channel, event.event, event.member);
    }
    // An 'error'-less emitter: a listener that throws must not break the store's bookkeeping.
    try {
      this.emit(event.event, event);
    } catch {
      /* the application's listener failed; presence goes on */
    }
  }

  /**
   * A join or leave becomes a message of the channel, published by the one
   * process that decided it: the broker then carries it to every node, in the
   * channel's order, and into history for resume, like any message.
   */
  #publishPresence(channel: string, kind: 'join' | 'leave', member: Member): void {
    let storing: Promise<Message>;
    try {
      storing = this.broker.publish(channel, encodePresenceData(member), { event: PRESENCE_EVENTS[kind] });
    } catch {
      return; // a broker already closed (the last leaves of a shutdown) refuses at once: the event is lost
    }
    this.#storing.add(storing);
    storing.then(
      () => this.#storing.delete(storing),
      // The broker is unreachable: this event is lost (the presence endpoint still tells the truth once it is back).
      () => this.#storing.delete(storing),
    );
  }

  /**
   * Members of `channel` in the whole cluster (clients, not users); this process's subscriptions when presence
   * is off.
   */
  async memberCount(channel: string): Promise<number> {
    if (this.presence === undefined) return this.#channels.get(channel)?.subscriberCount ?? 0;
    try {
      return await this.presence.store.count(channel);
    } catch {
      return this.#channels.get(channel)?.subscriberCount ?? 0;
    }
  }

  /**
   * `exclude`: a client id whose live subscribers, on every node, do not get this message (history keeps it for
   * all).
   */
  async publish(
    channel: string,
    data: string,
    options: { event?: string | undefined; exclude?: string | undefined } = {},
  ): Promise<PublishResult> {
    const size = this.#checkPublish(channel, data, options);
    const storing = this.broker.publish(channel, data, brokerOptions(options));
    this.#storing.add(storing);
    let message: Message;
    try {
      message = await storing;
    } finally {
      this.#storing.delete(storing);
    }
    this.#countPublished(size);
    return { message, subscribers: await this.memberCount(channel) };
  }

  /**
   * `publish` without a promise, when nothing in it waits: the broker stores
   * synchronously (memory) and the member count is this process's. Undefined
   * when it cannot (the caller then awaits `publish`); the same checks and
   * errors, the same message, ids, history and delivery. With one HTTP
   * request per message, the promises and microtask hops of `publish` are a
   * measurable part of a delivery (docs/benchmarks.md).
   */
  publishNow(
    channel: string,
    data: string,
    options: { event?: string | undefined; exclude?: string | undefined } = {},
  ): PublishResult | undefined {
    const publishNow = this.broker.publishNow;
    const store = this.presence?.store;
    if (publishNow === undefined || (store !== undefined && store.countNow === undefined)) return undefined;
    const size = this.#checkPublish(channel, data, options);
    const message = publishNow.call(this.broker, channel, data, brokerOptions(options));
    this.#countPublished(size);
    const subscribers =
      store === undefined ? (this.#channels.get(channel)?.subscriberCount ?? 0) : store.countNow!(channel);
    return { message, subscribers };
  }

  /** What every publish is refused for, whatever way it came in; its data's size in bytes. */
  #checkPublish(
    channel: string,
    data: string,
    options: { event?: string | undefined; exclude?: string | undefined },
  ): number {
    assertChannelName(channel);
    if (options.event !== undefined) assertEventName(options.event);
    if (options.exclude !== undefined && !isValidClientId(options.exclude)) {
      throw new KometaError('KOMETA_ERR_EXCLUDE_CLIENT', 'A client id is 1-64 characters of A-Z a-z 0-9 _ . : @ -');
    }
    // One rule for every way in (HTTP bodies are checked as bytes already;
    // a WebSocket frame or a library call can carry "\ud800" as a JSON
    // escape or a JS string): text must be well-formed, or encoding it as
    // UTF-8 would silently turn a lone surrogate into U+FFFD.
    if (!isWellFormed(data))
      throw new KometaError(
        'KOMETA_ERR_BODY_ENCODING',
        'Message data must be well-formed Unicode text (no lone surrogates)',
      );
    const size = Buffer.byteLength(data);
    if (size > this.limits.maxMessageBytes) {
      throw new KometaError(
        'KOMETA_ERR_BODY_TOO_LARGE',
        `Messages are limited to ${this.limits.maxMessageBytes} bytes`,
        {
          limit: this.limits.maxMessageBytes,
        },
      );
    }
    if (this.#closed) throw new KometaError('KOMETA_ERR_DRAINING');
    return size;
  }

  #countPublished(size: number): void {
    this.#counters.published++;
    this.#counters.publishedBytes += size;
  }

  /**
   * Register a subscriber and resolve its cursor: which gaps it must be told
   * about and which retained messages it must be sent. Rejects with a
   * KometaError (bad names, a cursor past the end) before anything is written.
   */
  async subscribe(
    channelNames: readonly string[],
    cursor: Cursor | null,
    member?: MemberIdentity,
    options: { presence?: boolean } = {},
  ): Promise<Subscription> {
    if (options.presence === true && !this.#inBandPresence) {
      throw new KometaError('KOMETA_ERR_PRESENCE_EVENTS_OFF');
    }
    if (this.#closed) throw new KometaError('KOMETA_ERR_DRAINING');
    if (channelNames.length === 0) throw new KometaError('KOMETA_ERR_CHANNEL_MISSING');
    const unique = [...new Set(channelNames)].sort();
    if (unique.length > this.limits.maxChannelsPerSubscription) {
      throw new KometaError(
        'KOMETA_ERR_TOO_MANY_CHANNELS',
        `At most ${this.limits.maxChannelsPerSubscription} channels per subscription`,
        {
          limit: this.limits.maxChannelsPerSubscription,
        },
      );
    }
    for (const name of unique) assertChannelName(name);

    const channels = unique.map((name) => this.#acquire(name));
    const subscription = new Subscription(this, channels, options.presence === true);
    // Registered before any await, so nothing published from here on is missed.
    for (const channel of channels) channel.catchingUp.add(subscription);
    this.#counters.subscriptionsOpened++;
    try {
      await Promise.all(channels.map((c) => c.ready));
      const reads = await Promise.all(
        channels.map((channel) => {
          const from = cursor?.get(channel.name);
          // No entry: start from what this process has delivered (i.e. from now).
          if (from === undefined) return undefined;
          if (from.epoch === channel.epoch && from.seq === channel.deliveredSeq) return undefined;
          return this.broker.read(channel.name, from.epoch === channel.epoch ? from.seq : 0);
        }),
      );
      if (subscription.state === 'closed') return subscription;
      channels.forEach((channel, i) => this.#resolve(subscription, channel, cursor?.get(channel.name), reads[i]));
      subscription.state = 'ready';
      if (this.presence !== undefined) {
        // Every subscription is a member; one made without an identity (a library call) is an anonymous one.
        const identity = member ?? { client: newClientId(), user: null, info: null, transport: 'library' };
        subscription.member = identity;
        // Counted before the subscriber hears it is subscribed: a publish right after sees it.
        await Promise.all(channels.map((channel) => this.presence!.join(channel.name, identity)));
      }
      return subscription;
    } catch (error) {
      this.unsubscribe(subscription);
      throw error;
    }
  }

  #resolve(
    subscription: Subscription,
    channel: LocalChannel,
    from: Position | undefined,
    read: HistoryRead | undefined,
  ): void {
    if (read === undefined) {
      subscription.positions.set(channel.name, from ?? { epoch: channel.epoch, seq: channel.deliveredSeq });
      return;
    }
    if (from !== undefined && from.epoch === read.epoch && from.seq > read.headSeq) {
      throw new KometaError('KOMETA_ERR_CURSOR_AHEAD', `Channel ${channel.name} has no message ${from.seq} yet`);
    }
    let afterSeq = from?.seq ?? 0;
    if (from === undefined || from.epoch !== read.epoch) {
      subscription.backlog.gaps.push({ channel: channel.name, reason: 'epoch-changed', epoch: read.epoch });
      afterSeq = read.oldestSeq - 1;
    } else if (from.seq < read.oldestSeq - 1) {
      subscription.backlog.gaps.push({
        channel: channel.name,
        reason: 'history-truncated',
        epoch: read.epoch,
        missed: { from: from.seq + 1, to: read.oldestSeq - 1 },
      });
      afterSeq = read.oldestSeq - 1;
    }
    subscription.positions.set(channel.name, { epoch: read.epoch, seq: afterSeq });
    for (const message of read.messages) if (message.seq > afterSeq) subscription.backlog.messages.push(message);
  }

  /**
   * Send a started subscription its gaps, backlog and buffered messages; join its group once level with the
   * channel.
   */
  catchUp(subscription: Subscription): void {
    if (this.#expireIfDue(subscription, wallClock.now())) return;
    const sink = subscription.sink!;
    const { gaps, messages } = subscription.backlog;
    for (const notice of gaps) {
      this.#counters.gaps++;
      sink.gap(notice, subscription.cursor());
    }
    subscription.backlog.gaps = [];
    const queue = messages.length > 0 ? messages.concat(subscription.buffered) : subscription.buffered;
    subscription.backlog.messages = [];
    subscription.buffered = [];
    this.#sendIndividually(subscription, queue);
    if (subscription.state === 'closed') return;
    this.#joinIfLevel(subscription);
  }

  /** Encode for one subscriber (catch-up is rare next to live fan-out, so per-subscriber cost is fine here). */
  #sendIndividually(subscription: Subscription, queue: readonly Message[]): void {
    if (this.#expireIfDue(subscription, wallClock.now())) return;
    const sink = subscription.sink!;
    const frames: Buffer[] = [];
    const sent: Message[] = [];
    const flush = () => {
      if (frames.length > 0)
        sink.push(frames.length === 1 ? frames[0]! : Buffer.concat(frames), subscription.cursor(), sent.splice(0));
      frames.length = 0;
    };
    for (const message of queue) {
      const position = subscription.positions.get(message.channel);
      if (position === undefined) continue;
      const channel = this.#channels.get(message.channel)!;
      if (message.epoch !== position.epoch) {
        // The channel's history was lost while this subscriber was catching up.
        flush();
        subscription.positions.set(message.channel, { epoch: message.epoch, seq: 0 });
        this.#counters.gaps++;
        sink.gap({ channel: message.channel, reason: 'epoch-changed', epoch: message.epoch }, subscription.cursor());
      }
      // Only what this process has delivered to everyone; newer ones come through the group.
      if (message.seq <= position.seq || message.seq > channel.deliveredSeq || message.epoch !== channel.epoch)
        continue;
      if (message.seq > position.seq + 1) {
        // The hub gave up on messages this subscriber had not reached (see #announceLoss).
        flush();
        this.#counters.gaps++;
        subscription.positions.set(message.channel, { epoch: message.epoch, seq: message.seq - 1 });
        sink.gap(
          {
            channel: message.channel,
            reason: 'history-truncated',
            epoch: message.epoch,
            missed: { from: position.seq + 1, to: message.seq - 1 },
          },
          subscription.cursor(),
        );
      }
      subscription.positions.set(message.channel, { epoch: message.epoch, seq: message.seq });
      // A plain subscriber steps over a join or leave: its cursor moves on, it is sent nothing.
      if (!subscription.wantsPresence && presenceKindOf(message.event) !== undefined) continue;
      frames.push(sink.encoder.message(message, subscription.cursor()));
      sent.push(message);
      this.#counters.delivered++;
    }
    flush();
  }

  #joinIfLevel(subscription: Subscription): void {
    for (const channel of subscription.channels) {
      const position = subscription.positions.get(channel.name)!;
      if (position.epoch !== channel.epoch || position.seq !== channel.deliveredSeq) return;
    }
    const sink = subscription.sink!;
    const presence = subscription.wantsPresence;
    const key = `${sink.encoder.name}\u0000${presence ? 'p' : ''}\u0000${subscription.channelNames.join(',')}`;
    let group = this.#groups.get(key);
    if (group === undefined) {
      group = new Group(key, sink.encoder, subscription.channels, presence);
      this.#groups.set(key, group);
      for (const channel of subscription.channels) channel.groups.add(group);
    }
    group.members.add(subscription);
    subscription.group = group;
    for (const channel of subscription.channels) channel.catchingUp.delete(subscription);
    subscription.state = 'live';
    this.#live.add(subscription);
    sink.live(subscription.cursor());
  }

  unsubscribe(subscription: Subscription): void {
    if (subscription.state === 'closed') return;
    subscription.state = 'closed';
    this.#counters.subscriptionsClosed++;
    this.#live.delete(subscription);
    const group = subscription.group;
    if (group !== undefined) {
      group.members.delete(subscription);
      if (group.members.size === 0) {
        this.#groups.delete(group.key);
        for (const channel of group.channels) channel.groups.delete(group);
      }
      subscription.group = undefined;
    }
    for (const channel of subscription.channels) {
      channel.catchingUp.delete(subscription);
      this.#release(channel);
    }
    if (subscription.member !== undefined) {
      for (const channel of subscription.channels) this.presence?.leave(channel.name, subscription.member.client);
    }
  }

  #acquire(name: string): LocalChannel {
    let channel = this.#channels.get(name);
    if (channel === undefined) {
      channel = new LocalChannel(name, this.broker);
      channel.ready.catch(() => {}); // the subscribe that awaits it reports the error
      this.#channels.set(name, channel);
    }
    channel.subscriberCount++;
    return channel;
  }

  #release(channel: LocalChannel): void {
    channel.subscriberCount--;
    if (channel.subscriberCount === 0 && this.#channels.get(channel.name) === channel) {
      this.#channels.delete(channel.name);
      this.broker.unwatch(channel.name);
    }
  }

  #onBrokerMessage(message: Message): void {
    const channel = this.#channels.get(message.channel);
    if (channel === undefined) return;
    if (channel.pending.length === 0) this.#dirty.push(channel);
    channel.pending.push(message);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // After the poll phase: every publish read in this turn of the event loop
      // is fanned out together, one write per subscriber.
      setImmediate(() => this.flush());
    }
  }

  /** Fan out everything pending. Public for tests and for callers that need delivery now. */
  flush(): void {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const channel of dirty) {
      if (channel.repairing || this.#channels.get(channel.name) !== channel) continue;
      this.#flushChannel(channel);
    }
  }

  #flushChannel(channel: LocalChannel): void {
    const pending = channel.pending;
    channel.pending = [];
    // The common case, one new message next in line: no list of the deliverable ones to build.
    if (pending.length === 1) {
      const message = pending[0]!;
      if (message.epoch === channel.epoch && message.seq === channel.deliveredSeq + 1) {
        this.#fanOut(channel, pending);
        return;
      }
    }
    const deliverable: Message[] = [];
    for (let i = 0; i < pending.length; i++) {
      const message = pending[i]!;
      if (message.epoch !== channel.epoch) {
        if (deliverable.length > 0) this.#fanOut(channel, deliverable.splice(0));
        this.#epochChanged(channel, message.epoch);
      }
      // A duplicate from the broker, also within this batch (a message handed on
      // again by a reconnect's catch-up in the same turn as its pub/sub copy).
      if (message.seq <= channel.deliveredSeq + deliverable.length) continue;
      if (message.seq > channel.deliveredSeq + 1 + deliverable.length) {
        // A hole: something was published that never reached us. Fetch it from history first.
        if (deliverable.length > 0) this.#fanOut(channel, deliverable.splice(0));
        channel.pending = pending.slice(i).concat(channel.pending);
        this.#repair(channel);
        return;
      }
      deliverable.push(message);
    }
    if (deliverable.length > 0) this.#fanOut(channel, deliverable);
  }

  #fanOut(channel: LocalChannel, messages: readonly Message[]): void {
    if (messages.length > 1 && messages.some((m) => m.exclude !== undefined)) {
      // Members skip different messages: one fan-out per message, so each still encodes once per group.
      for (const message of messages) this.#fanOut(channel, [message]);
      return;
    }
    const excluded = messages.length === 1 ? messages[0]!.exclude : undefined;
    // Watched (by /metrics or the dashboard): two clock reads per fan-out, none per subscriber.
    const observed = fanOutChannel.hasSubscribers;
    const started = observed ? performance.now() : 0;
    let subscribers = 0;
    let bytes = 0;
    // One wall-clock read per fan-out, none per subscriber: credentials are compared with it.
    const now = wallClock.now();
    // Joins and leaves go to presence groups only: filtered once per fan-out, and only when there are any.
    const plain = this.#inBandPresence ? messages.filter((m) => presenceKindOf(m.event) === undefined) : messages;
    for (const group of channel.groups) {
      const sent = group.presence ? messages : plain;
      if (sent.length === 0) continue;
      const { frames, cursor } = this.#encodeForGroup(group, channel, sent);
      // Long-poll and expired members leave the group in the loop; iterating a Set while deleting is safe.
      let reached = 0;
      for (const subscription of group.members) {
        if (excluded !== undefined && subscription.client === excluded) continue;
        if (this.#expireIfDue(subscription, now)) continue;
        subscription.sink!.push(frames, cursor, sent);
        reached++;
      }
      this.#counters.delivered += reached * sent.length;
      subscribers += reached;
      bytes += frames.length * reached;
    }
    this.#counters.deliveredBytes += bytes;
    channel.messageCount += messages.length;
    if (observed) {
      const durationMs = performance.now() - started;
      fanOutChannel.publish({
        channel: channel.name,
        messages: messages.length,
        subscribers,
        bytes,
        publishedAt: messages[0]!.time,
        startedAt: Date.now() - durationMs,
        durationMs,
      });
    }
    channel.deliveredSeq = messages[messages.length - 1]!.seq;
    for (const subscription of channel.catchingUp) {
      if (subscription.state === 'catching-up') {
        this.#sendIndividually(subscription, messages);
        if (subscription.state === 'catching-up') this.#joinIfLevel(subscription);
      } else {
        subscription.buffered.push(...messages);
      }
    }
  }

  /** The group's bytes for `messages`, encoded once, with the cursor after the last of them. */
  #encodeForGroup(
    group: Group,
    channel: LocalChannel,
    messages: readonly Message[],
  ): { frames: Buffer; cursor: string } {
    const savedSeq = channel.deliveredSeq;
    let cursor = '';
    let frames: Buffer;
    if (messages.length === 1) {
      const message = messages[0]!;
      channel.deliveredSeq = message.seq;
      cursor = group.cursorAfter(channel, message);
      frames = group.encoder.message(message, cursor);
    } else {
      const parts: Buffer[] = [];
      for (const message of messages) {
        channel.deliveredSeq = message.seq;
        cursor = group.cursorAfter(channel, message);
        parts.push(group.encoder.message(message, cursor));
      }
      frames = Buffer.concat(parts);
    }
    channel.deliveredSeq = savedSeq;
    return { frames, cursor };
  }

  /** End a subscription whose credential has run out (it is told why); true when it did. */
  #expireIfDue(subscription: Subscription, now: number): boolean {
    if (subscription.expiresAt === undefined || subscription.expiresAt > now) return false;
    subscription.sink?.end('token-expired');
    this.unsubscribe(subscription);
    return true;
  }

  #epochChanged(channel: LocalChannel, epoch: string): void {
    channel.epoch = epoch;
    channel.deliveredSeq = 0;
    const notice: GapNotice = { channel: channel.name, reason: 'epoch-changed', epoch };
    for (const group of channel.groups) {
      for (const subscription of group.members) {
        this.#counters.gaps++;
        subscription.sink!.gap(notice, subscription.cursor());
      }
    }
  }

  #repair(channel: LocalChannel): void {
    channel.repairing = true;
    const afterSeq = channel.deliveredSeq;
    this.broker.read(channel.name, afterSeq).then(
      (read) => {
        channel.repairing = false;
        if (this.#channels.get(channel.name) !== channel) return;
        const bySeq = new Map<number, Message>();
        for (const m of read.messages) if (m.epoch === channel.epoch) bySeq.set(m.seq, m);
        for (const m of channel.pending) if (m.epoch === channel.epoch) bySeq.set(m.seq, m);
        const newer = channel.pending.filter((m) => m.epoch !== channel.epoch);
        channel.pending = [...bySeq.values()].sort((a, b) => a.seq - b.seq).concat(newer);
        // Whatever is still missing after a fresh read is gone for good (trimmed
        // from history, or the history itself was lost): say so, then go on.
        const first = channel.pending[0];
        if (first !== undefined && first.epoch === channel.epoch && first.seq > channel.deliveredSeq + 1) {
          this.#announceLoss(channel, channel.deliveredSeq + 1, first.seq - 1);
        }
        this.#flushChannel(channel);
      },
      () => {
        // The broker is unreachable; try again on the next message or sweep.
        channel.repairing = false;
        if (channel.pending.length > 0) {
          this.#dirty.push(channel);
          setTimeout(() => this.flush(), 1000).unref();
        }
      },
    );
  }

  /** Live subscribers of `channel` will never get messages `from`..`to`: tell them before moving on. */
  #announceLoss(channel: LocalChannel, from: number, to: number): void {
    const notice: GapNotice = {
      channel: channel.name,
      reason: 'history-truncated',
      epoch: channel.epoch,
      missed: { from, to },
    };
    channel.deliveredSeq = to;
    for (const group of channel.groups) {
      for (const subscription of group.members) {
        this.#counters.gaps++;
        subscription.sink!.gap(notice, subscription.cursor());
      }
    }
  }

  async channelInfo(channel: string): Promise<ChannelStats & { subscribers: number }> {
    assertChannelName(channel);
    const [stats, subscribers] = await Promise.all([this.broker.stats(channel), this.memberCount(channel)]);
    return { ...stats, subscribers };
  }

  subscriberCount(channel: string): number {
    return this.#channels.get(channel)?.subscriberCount ?? 0;
  }

  /** Channels with subscribers in this process (for the operator's view; one pass over them). */
  *localChannels(): IterableIterator<LocalChannelSummary> {
    for (const channel of this.#channels.values()) {
      yield { name: channel.name, subscribers: channel.subscriberCount, messages: channel.messageCount };
    }
  }

  get channelCount(): number {
    return this.#channels.size;
  }

  get liveSubscriptions(): ReadonlySet<Subscription> {
    return this.#live;
  }

  /** Called about once a minute by the server's sweep. */
  housekeeping(): void {
    this.broker.sweep?.((channel) => this.#channels.has(channel));
  }

  /**
   * Graceful stop: refuse new publishes and subscriptions, wait for the
   * publishes already handed to the broker (their publishers get a 201 and
   * were promised delivery), fan out everything accepted, then end every
   * subscription. A message the broker passes on only after this (Redis
   * pub/sub may lag its reply) is in history: the subscriber's cursor gets it
   * on resume.
   */
  async drain(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#storing]);
    this.close();
    // Members leave now, without the grace period: other nodes need not wait for this one's entries to expire.
    await this.presence?.close();
  }

  /** Fan out what is pending, then end every subscription (they are told why) and stop accepting new ones. */
  close(): void {
    this.#closed = true;
    // Accepted messages go out before the streams end: a 201 promised them to every subscriber.
    this.flush();
    const started = new Set(this.#live);
    for (const channel of this.#channels.values())
      for (const subscription of channel.catchingUp) started.add(subscription);
    for (const subscription of started) {
      // Still resolving: its route sees it closed when it gets there.
      if (subscription.sink === undefined) continue;
      subscription.sink.end('shutdown');
      this.unsubscribe(subscription);
    }
    // Members leave now, without the grace period: the process is going away.
    void this.presence?.close();
  }
}

/** The broker's publish options: `exclude` only when there is one. */
function brokerOptions(options: { event?: string | undefined; exclude?: string | undefined }): PublishOptions {
  return options.exclude === undefined ? { event: options.event } : { event: options.event, exclude: options.exclude };
}
