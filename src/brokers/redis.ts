import diagnostics from 'node:diagnostics_channel';
import { Redis, type RedisOptions } from 'ioredis';
import type { Broker, BrokerHealth, ChannelStats, PublishOptions } from '../core/broker.js';
import type { Clock } from '../core/clock.js';
import { formatId } from '../core/cursor.js';
import { newEpoch } from '../core/epoch.js';
import { KometaError } from '../core/errors.js';
import { type HistoryLimits, defaultHistoryLimits } from '../core/history.js';
import { type ChannelHead, type HistoryRead, type Message, withExclude } from '../core/message.js';
import type { PresenceStore } from '../core/presence.js';
import { RedisPresenceStore } from './redis-presence.js';
import { type Script, publishScript, readScript } from './redis-scripts.js';

/**
 * The few commands the broker sends on its command connection. An ioredis
 * `Redis` has them; anything else that has them (a wrapper that counts, a
 * client for another Redis-compatible server) will do.
 */
export interface RedisCommandLink {
  readonly status: string;
  evalsha(sha: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
  pexpire(key: string, ms: number): Promise<unknown>;
  ping(): Promise<unknown>;
  on(event: 'ready' | 'close' | 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'ready', listener: () => void): unknown;
  /** Connect again after the link ended ('end': the client gave up reconnecting). */
  connect(): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
}

/** The subscriber connection: pub/sub only. */
export interface RedisSubscriberLink {
  readonly status: string;
  subscribe(...channels: string[]): Promise<unknown>;
  unsubscribe(...channels: string[]): Promise<unknown>;
  ping(): Promise<unknown>;
  on(event: 'message', listener: (channel: string, payload: string) => void): unknown;
  on(event: 'ready' | 'close' | 'end', listener: () => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'ready', listener: () => void): unknown;
  /** Connect again after the link ended ('end': the client gave up reconnecting). */
  connect(): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(reconnect?: boolean): void;
}

export interface RedisBrokerOptions {
  /** `redis://[user:password@]host:port[/db]`; ignored when `links` is given. Default redis://127.0.0.1:6379. */
  readonly url?: string;
  /**
   * Prepended to every key and pub/sub channel, so several kometa deployments can share one Redis.
   * Default `kometa:`.
   */
  readonly prefix?: string;
  readonly history?: Partial<HistoryLimits>;
  /**
   * A channel's epoch and last sequence are forgotten after this long with no
   * publish and no reader (its history is gone by then anyway); a later cursor
   * for it gets an epoch-changed gap. Watched channels are kept alive by the
   * sweep. Default: history age + 24 hours.
   */
  readonly channelTtlMs?: number;
  /** Time for message stamps and history age. Default: Redis's own clock (`TIME`), one clock for every node. */
  readonly clock?: Clock;
  /** A command that gets no answer in this time fails (and a publish answers 503). Default 2000. */
  readonly commandTimeoutMs?: number;
  /** A dead node's presence members are dropped within this long (see docs/presence.md). Default 15000. */
  readonly presenceTtlMs?: number;
  /** Reconnect backoff: the delay doubles from `minMs` up to `maxMs`, with jitter. Default 100 / 3000. */
  readonly reconnect?: { readonly minMs?: number; readonly maxMs?: number };
  /**
   * Both connections are pinged this often; one that does not answer within
   * the command timeout is dropped and reconnected. A pub/sub connection whose
   * peer vanished without a reset (a network black hole, a frozen server)
   * would otherwise look healthy while delivering nothing. Default 10000; 0 = off.
   */
  readonly pingIntervalMs?: number;
  /**
   * Redis Sentinel instead of `url`: the sentinels are asked for the current
   * master of `name`, and asked again after every disconnect, so a failover is
   * followed. Credentials for the master come from `url` when given.
   */
  readonly sentinel?: {
    readonly sentinels: readonly { readonly host: string; readonly port: number }[];
    readonly name: string;
  };
  /** Bring your own connections (tests, instrumentation). Both must be dedicated to this broker. */
  readonly links?: { readonly commands: RedisCommandLink; readonly subscriber: RedisSubscriberLink };
}

const errorChannel = diagnostics.channel('kometa:broker:error');

const CLAIM_ONCE = "if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return 1 else return 0 end";

/**
 * Scale-out broker on Redis (7.x). Each channel is a stream plus a small hash
 * (epoch, last sequence, bytes); a Lua script increments the sequence, appends,
 * trims and publishes in one atomic step, so positions are totally ordered
 * however many nodes publish at once. Messages reach other nodes over pub/sub;
 * pub/sub may drop messages around a reconnect, and the hub repairs holes from
 * `read`, which always answers from the stream.
 *
 * Connections are never queued behind: while Redis is unreachable, publish
 * and read fail at once with KOMETA_ERR_BROKER_UNAVAILABLE, health() says why,
 * and ioredis reconnects with backoff. After a reconnect the broker
 * resubscribes and, for each watched channel whose head moved, hands the
 * newest message to the listener so the hub notices the hole and fills it.
 */
export class RedisBroker implements Broker {
  readonly #commands: RedisCommandLink;
  readonly #subscriber: RedisSubscriberLink;
  readonly #presenceTtlMs: number | undefined;
  readonly #prefix: string;
  readonly #limits: HistoryLimits;
  readonly #channelTtlMs: number;
  readonly #clock: Clock | undefined;
  readonly #where: string;
  #listener: (message: Message) => void = () => {};
  /** Watched channels → the SUBSCRIBE in flight for them (head() waits for it, see there). */
  readonly #watched = new Map<string, Promise<void>>();
  /**
   * The newest position handed to the listener per watched channel, to know after a reconnect whether anything was
   * missed.
   */
  readonly #seen = new Map<string, { epoch: string; seq: number }>();
  /**
   * The newest position Redis is known to have had per watched channel (handed on, or confirmed to a publish here),
   * to notice a rollback.
   */
  readonly #confirmed = new Map<string, { epoch: string; seq: number }>();
  #lastError: string | undefined;
  #closed = false;
  /**
   * Set when either link drops while channels are watched, cleared once the
   * check after the reconnect has run for every one of them: until then a
   * publish could be given a position this node has already seen (Redis came
   * back older, a lagging replica was promoted), so it answers 503 instead.
   */
  #rollbackCheckPending = false;
  #recoveryRun = 0;
  #pingTimer: NodeJS.Timeout | undefined;
  #everReady: Promise<void>;

  constructor(options: RedisBrokerOptions = {}) {
    this.#prefix = options.prefix ?? 'kometa:';
    this.#presenceTtlMs = options.presenceTtlMs;
    this.#limits = { ...defaultHistoryLimits, ...options.history };
    this.#channelTtlMs = options.channelTtlMs ?? this.#limits.maxAgeMs + 24 * 60 * 60 * 1000;
    this.#clock = options.clock;
    if (options.links !== undefined) {
      this.#commands = options.links.commands;
      this.#subscriber = options.links.subscriber;
      this.#where = 'Redis';
    } else if (options.sentinel !== undefined) {
      const connection = sentinelConnectionOptions(options, options.sentinel);
      this.#commands = new Redis(connection);
      this.#subscriber = new Redis(connection);
      const sentinels = options.sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
      this.#where = `Redis master "${options.sentinel.name}" (sentinels ${sentinels})`;
    } else {
      const url = options.url ?? 'redis://127.0.0.1:6379';
      const connection = redisConnectionOptions(options);
      this.#commands = new Redis(url, connection);
      this.#subscriber = new Redis(url, connection);
      // Never echo credentials: name the server by host and port only.
      const parsed = new URL(url);
      this.#where = `Redis at ${parsed.hostname}:${parsed.port || '6379'}`;
    }
    this.#everReady = Promise.all([readyOnce(this.#commands), readyOnce(this.#subscriber)]).then(() => {});
    this.#everReady.catch(() => {});
    const onError = (error: Error) => {
      // Without a listener ioredis prints every failed reconnect; the cause is kept for health().
      this.#lastError = error.message;
      if (errorChannel.hasSubscribers) errorChannel.publish({ broker: 'redis', error });
    };
    this.#commands.on('error', onError);
    this.#subscriber.on('error', onError);
    this.#commands.on('ready', () => {
      this.#lastError = undefined;
    });
    this.#subscriber.on('message', (channel, payload) => this.#onPubSub(channel, payload));
    this.#subscriber.on('ready', () => this.#resubscribe());
    const onLinkClosed = () => {
      this.#recoveryRun++; // a check already under way may have asked the Redis that just went
      if (this.#watched.size > 0) this.#rollbackCheckPending = true;
    };
    this.#commands.on('close', onLinkClosed);
    this.#subscriber.on('close', onLinkClosed);
    // Only the command link dropped: the subscriber's 'ready' will not come, so check from here.
    this.#commands.on('ready', () => {
      if (this.#rollbackCheckPending && this.#subscriber.status === 'ready') this.#resubscribe();
    });
    const retry = redisConnectionOptions(options).retryStrategy!;
    for (const link of [this.#commands, this.#subscriber]) this.#reviveOnEnd(link, retry);
    const pingIntervalMs = options.pingIntervalMs ?? 10_000;
    if (pingIntervalMs > 0) {
      this.#pingTimer = setInterval(() => this.#checkLinks(), pingIntervalMs);
      this.#pingTimer.unref();
    }
  }

  /**
   * ioredis stops reconnecting for good ('end') when its connector is told to
   * disconnect while it is still connecting. With Sentinel that happens in a
   * failover: the +switch-master watcher of an earlier connection fires while
   * a reconnect is asking the sentinels for the master, the connect fails with
   * "Connection is closed." and the link stays down, and publishes answer 503,
   * until the process restarts. An open broker never lets a link end: connect
   * it again, with the same backoff as ioredis's own reconnects.
   */
  #reviveOnEnd(link: RedisCommandLink | RedisSubscriberLink, retry: (attempt: number) => number | void | null): void {
    let attempt = 0;
    link.on('ready', () => {
      attempt = 0;
    });
    link.on('end', () => {
      if (this.#closed) return;
      const delay = Number(retry(++attempt) ?? 0);
      setTimeout(() => {
        if (this.#closed || link.status !== 'end') return;
        // A failed connect ends the link again, and 'end' brings us back here.
        link.connect().catch(() => {});
      }, delay).unref();
    });
  }

  /** Ping both links; drop one that does not answer, so ioredis reconnects it (and we resubscribe and catch up). */
  #checkLinks(): void {
    for (const link of [this.#commands, this.#subscriber]) {
      if (link.status !== 'ready') continue;
      link.ping().catch((error: unknown) => {
        if (this.#closed || link.status !== 'ready') return;
        this.#lastError = `no answer to PING (${error instanceof Error ? error.message : String(error)})`;
        link.disconnect(true);
      });
    }
  }

  /** Resolves once both connections have been ready once (the CLI waits for it before it listens). */
  ready(): Promise<void> {
    return this.#everReady;
  }

  #keys(channel: string): [meta: string, stream: string] {
    return [`${this.#prefix}{${channel}}.h`, `${this.#prefix}{${channel}}.s`];
  }

  #pubsubName(channel: string): string {
    return `${this.#prefix}{${channel}}`;
  }

  #commonArgs(): (string | number)[] {
    const { maxMessages, maxBytes, maxAgeMs } = this.#limits;
    return [newEpoch(), maxMessages, maxBytes, maxAgeMs, this.#clock?.now() ?? '', this.#channelTtlMs];
  }

  async #run(script: Script, channel: string, args: (string | number)[]): Promise<unknown[]> {
    if (this.#closed) throw new KometaError('KOMETA_ERR_BROKER_UNAVAILABLE', 'The message store is closed');
    // Fail fast: a command sent now would only wait for a connection that is not there.
    if (this.#commands.status !== 'ready')
      throw this.#unavailable(
        undefined,
        script === publishScript ? 'the message was not stored; retry shortly' : undefined,
      );
    const keys = this.#keys(channel);
    try {
      try {
        return (await this.#commands.evalsha(script.sha, 2, ...keys, ...args)) as unknown[];
      } catch (error) {
        // After a Redis restart its script cache is empty: send the source once.
        if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
        return (await this.#commands.eval(script.source, 2, ...keys, ...args)) as unknown[];
      }
    } catch (error) {
      this.#lastError = (error as Error).message;
      if (errorChannel.hasSubscribers) errorChannel.publish({ broker: 'redis', error });
      // Sent but unanswered: Redis may still have run it (docs/errors.md).
      throw this.#unavailable(
        undefined,
        script === publishScript ? 'the message may or may not have been stored; retry' : 'retry shortly',
      );
    }
  }

  #unavailable(why = this.#lastError, advice = 'retry shortly'): KometaError {
    return new KometaError(
      'KOMETA_ERR_BROKER_UNAVAILABLE',
      `${this.#where} is unavailable${why ? ` (${why})` : ''}; ${advice}`,
    );
  }

  /*
   * A publish that fails is never retried by the client library (no offline
   * queue, no resend after reconnect): a retried script could store the
   * message twice. When the connection drops after the script was sent, the
   * caller gets a 503 for a message that may in fact be stored; a 201 is only
   * ever sent for a message Redis confirmed.
   */
  /** SET NX with an expiry: one atomic "first use wins" for every node on this Redis. */
  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    if (this.#commands.status !== 'ready') throw this.#unavailable();
    try {
      const won = await this.#commands.eval(CLAIM_ONCE, 1, `${this.#prefix}once:${key}`, Math.max(1, Math.ceil(ttlMs)));
      return won === 1;
    } catch {
      throw this.#unavailable();
    }
  }

  async publish(channel: string, data: string, options: PublishOptions = {}): Promise<Message> {
    const event = options.event ?? '';
    if (this.#rollbackCheckPending && !this.#closed)
      throw this.#unavailable('reconnected; checking the watched channels against what this node has seen');
    const reply = await this.#run(publishScript, channel, [
      ...this.#commonArgs(),
      data,
      event,
      this.#pubsubName(channel),
      options.exclude ?? '',
    ]);
    const message = makeMessage(channel, String(reply[0]), Number(reply[1]), Number(reply[2]), event, data);
    // A position Redis confirmed: if Redis later turns out not to have it, that is a rollback (see #resubscribe).
    if (this.#watched.has(channel)) raise(this.#confirmed, message);
    return message;
  }

  async read(channel: string, afterSeq: number): Promise<HistoryRead> {
    const reply = await this.#run(readScript, channel, [...this.#commonArgs(), 'after', afterSeq]);
    return toHistoryRead(channel, reply);
  }

  async head(channel: string): Promise<ChannelHead> {
    // The hub watches, then asks for the head, and counts on every message
    // after that head reaching the listener. That holds only if the SUBSCRIBE
    // was processed before the head was read; otherwise a message published
    // in between would be missed until the next one reveals the hole.
    const subscribing = this.#watched.get(channel);
    if (subscribing !== undefined) await subscribing;
    const reply = await this.#run(readScript, channel, [...this.#commonArgs(), 'head', 0]);
    const head = { epoch: String(reply[0]), seq: Number(reply[1]) };
    if (this.#watched.has(channel)) raise(this.#confirmed, { channel, ...head });
    return head;
  }

  async stats(channel: string): Promise<ChannelStats> {
    const reply = await this.#run(readScript, channel, [...this.#commonArgs(), 'stats', 0]);
    return {
      epoch: String(reply[0]),
      headSeq: Number(reply[1]),
      oldestSeq: Number(reply[2]),
      messages: Number(reply[3]),
      bytes: Number(reply[4]),
    };
  }

  setListener(listener: (message: Message) => void): void {
    this.#listener = listener;
  }

  watch(channel: string): void {
    if (this.#watched.has(channel)) return;
    this.#watched.set(channel, this.#subscribe([channel]));
  }

  unwatch(channel: string): void {
    if (!this.#watched.delete(channel)) return;
    this.#seen.delete(channel);
    this.#confirmed.delete(channel);
    if (this.#subscriber.status === 'ready') this.#subscriber.unsubscribe(this.#pubsubName(channel)).catch(() => {});
  }

  /** Resolves when subscribed or when it cannot be now (the reconnect handler subscribes again). */
  #subscribe(channels: string[]): Promise<void> {
    if (this.#subscriber.status !== 'ready' || channels.length === 0) return Promise.resolve();
    return this.#subscriber.subscribe(...channels.map((c) => this.#pubsubName(c))).then(
      () => {},
      () => {},
    );
  }

  /**
   * After (re)connecting: subscribe to every watched channel again, then look
   * at each one's newest message. Anything published while the link was down
   * reached no one here, and the hub only notices a hole when a later message
   * arrives; handing it the newest message now makes it read the rest from
   * history. If Redis lost its data, the newest message (when there is one)
   * is of a new epoch, and the hub tells subscribers about the gap. If Redis
   * kept the epoch but lost its newest messages (restarted from an older
   * snapshot, or a replica that lagged took over), the script starts a new
   * epoch rather than hand out positions this node has already seen.
   */
  #resubscribe(): void {
    const run = ++this.#recoveryRun;
    const recovery: RecoveringNode = {
      seen: this.#seen,
      confirmed: this.#confirmed,
      watching: (channel) => this.#watched.has(channel),
      check: (channel, args) => this.#run(readScript, channel, [...this.#commonArgs(), ...args]),
      deliver: (message) => this.#deliver(message),
    };
    const channels = [...this.#watched.keys()];
    if (channels.length === 0) {
      this.#rollbackCheckPending = false;
      return;
    }
    const subscribed = this.#subscribe(channels);
    for (const channel of channels) this.#watched.set(channel, subscribed);
    // A step that never settles (a SUBSCRIBE or a 'ready' lost in a failover)
    // must not leave the publish gate shut: start over if this run hangs.
    const watchdog = setTimeout(() => {
      if (run === this.#recoveryRun && this.#rollbackCheckPending && !this.#closed) this.#resubscribe();
    }, 5000);
    watchdog.unref();
    subscribed
      .then(() => readyOnce(this.#commands))
      .then(() =>
        Promise.all(
          channels.map(async (channel) => {
            if (this.#watched.has(channel)) await catchUpChannel(channel, recovery);
          }),
        ),
      )
      .then(() => {
        clearTimeout(watchdog);
        if (run === this.#recoveryRun) this.#rollbackCheckPending = false;
      })
      .catch(() => {
        // Redis went away again, or answered with an error (a former master
        // turned replica during a failover). A 'ready' runs this again when a
        // link reconnects; when both links stay up, no 'ready' comes, and the
        // publish gate would stay shut: try again shortly.
        clearTimeout(watchdog);
        const retry = setTimeout(() => {
          if (run === this.#recoveryRun && this.#rollbackCheckPending && !this.#closed) this.#resubscribe();
        }, 250);
        retry.unref();
      });
  }

  #onPubSub(pubsubChannel: string, payload: string): void {
    const channel = channelOfPubSub(this.#prefix, pubsubChannel);
    if (channel === undefined || !this.#watched.has(channel)) return;
    const message = parsePayload(channel, payload);
    if (message !== undefined) this.#deliver(message);
  }

  #deliver(message: Message): void {
    raise(this.#seen, message);
    raise(this.#confirmed, message);
    this.#listener(message);
  }

  health(): BrokerHealth {
    if (this.#closed) return { ok: false, reason: 'closed' };
    // Publishes answer 503 until a reconnect's check of the watched channels is done: say so here too, so
    // that /healthz and publishing never disagree.
    if (this.#commands.status === 'ready' && this.#subscriber.status === 'ready') {
      if (!this.#rollbackCheckPending) return { ok: true };
      return { ok: false, reason: `${this.#where} reconnected; checking the watched channels` };
    }
    const state = this.#commands.status !== 'ready' ? this.#commands.status : this.#subscriber.status;
    return {
      ok: false,
      reason: `${this.#where} is unreachable (${state}${this.#lastError ? `: ${this.#lastError}` : ''})`,
    };
  }

  /** Keep the epoch of every watched channel alive, however quiet the channel is. */
  sweep(): void {
    if (this.#commands.status !== 'ready') return;
    for (const channel of this.#watched.keys()) {
      this.#commands.pexpire(this.#keys(channel)[0], this.#channelTtlMs).catch(() => {});
    }
  }

  /**
   * The broker's connections and key prefix, for what shares them: idempotency
   * keys and the control channel (redis-backend.ts).
   */
  get links(): {
    readonly commands: RedisCommandLink;
    readonly subscriber: RedisSubscriberLink;
    readonly prefix: string;
  } {
    return { commands: this.#commands, subscriber: this.#subscriber, prefix: this.#prefix };
  }

  /** Members in Redis, shared by every node (redis-presence.ts); one store (one node id) per hub. */
  presenceStore(): PresenceStore {
    return new RedisPresenceStore(this.#commands, this.#prefix, { ttlMs: this.#presenceTtlMs });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#pingTimer);
    await Promise.all(
      [this.#commands, this.#subscriber].map((link) =>
        link.status === 'ready'
          ? link.quit().then(
              () => {},
              () => link.disconnect(),
            )
          : link.disconnect(),
      ),
    );
  }
}

/** What catchUpChannel needs of a Redis broker. */
export interface RecoveringNode {
  /** The newest position handed to the hub, per channel. */
  readonly seen: Map<string, { epoch: string; seq: number }>;
  /** The newest position this node knows Redis had, per channel (the rollback check compares it). */
  readonly confirmed: Map<string, { epoch: string; seq: number }>;
  watching(channel: string): boolean;
  /** Run the read script on `channel` with these arguments after the common ones. */
  check(channel: string, args: (string | number)[]): Promise<unknown[]>;
  deliver(message: Message): void;
}

/**
 * One channel's part of a recovery, the same for the single Redis and the
 * Cluster broker: the read script's rollback check (it starts a new epoch if
 * Redis lost messages this node had confirmed) returns the channel's newest
 * message, which is handed on when this node has not seen it, so that the
 * hub notices the hole and reads the rest from history.
 */
export async function catchUpChannel(channel: string, node: RecoveringNode): Promise<void> {
  const confirmed = node.confirmed.get(channel);
  const reply = await node.check(channel, ['check', confirmed?.seq ?? 0, confirmed?.epoch ?? '']);
  const seen = node.seen.get(channel);
  const newest = toHistoryRead(channel, reply).messages[0];
  if (newest === undefined || !node.watching(channel)) return;
  if (seen !== undefined && seen.epoch === newest.epoch && seen.seq >= newest.seq) return;
  node.deliver(newest);
}

/** Record `message`'s position in `positions` if it is newer than what is there (or of another epoch). */
export function raise(
  positions: Map<string, { epoch: string; seq: number }>,
  message: { readonly channel: string; readonly epoch: string; readonly seq: number },
): void {
  const known = positions.get(message.channel);
  if (known === undefined || known.epoch !== message.epoch || known.seq < message.seq) {
    positions.set(message.channel, { epoch: message.epoch, seq: message.seq });
  }
}

export function redisConnectionOptions(options: RedisBrokerOptions): RedisOptions {
  const minMs = options.reconnect?.minMs ?? 100;
  const maxMs = options.reconnect?.maxMs ?? 3000;
  return {
    // Commands are never held for a connection that is not there, and never
    // resent after a reconnect: a publish either is confirmed now or fails now.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false, // the broker resubscribes itself, then checks for missed messages
    commandTimeout: options.commandTimeoutMs ?? 2000,
    connectTimeout: 5000,
    // Doubling with jitter, so a fleet of nodes does not reconnect in step.
    retryStrategy: (attempt) => {
      const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt - 1, 16));
      return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    },
    lazyConnect: false,
  };
}

/**
 * Connection options for a master found through Redis Sentinel: the same
 * no-queue, no-resend rules, with the sentinels asked for the master on every
 * (re)connect and `failoverDetector` so a switch of master that leaves the
 * old one reachable (a manual failover, a partition) is noticed too.
 */
function sentinelConnectionOptions(
  options: RedisBrokerOptions,
  sentinel: NonNullable<RedisBrokerOptions['sentinel']>,
): RedisOptions {
  const url = options.url === undefined ? undefined : new URL(options.url);
  return {
    ...redisConnectionOptions(options),
    sentinels: sentinel.sentinels.map((s) => ({ host: s.host, port: s.port })),
    name: sentinel.name,
    username: url?.username ? decodeURIComponent(url.username) : undefined,
    password: url?.password ? decodeURIComponent(url.password) : undefined,
    db: url !== undefined && url.pathname.length > 1 ? Number(url.pathname.slice(1)) : undefined,
    sentinelCommandTimeout: options.commandTimeoutMs ?? 2000,
    failoverDetector: true,
  };
}

/** Resolves the next time (or now, if already) the link is ready. */
function readyOnce(link: {
  readonly status: string;
  once(event: 'ready', listener: () => void): unknown;
}): Promise<void> {
  if (link.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => link.once('ready', resolve));
}

export function makeMessage(
  channel: string,
  epoch: string,
  seq: number,
  time: number,
  event: string,
  data: string,
): Message {
  return {
    channel,
    epoch,
    seq,
    id: formatId(channel, epoch, seq),
    event: event === '' ? undefined : event,
    data,
    time,
    size: Buffer.byteLength(data),
  };
}

export function toHistoryRead(channel: string, reply: unknown[]): HistoryRead {
  const epoch = String(reply[0]);
  const messages: Message[] = [];
  for (let i = 3; i + 3 < reply.length; i += 4) {
    messages.push(
      makeMessage(channel, epoch, Number(reply[i]), Number(reply[i + 1]), String(reply[i + 2]), String(reply[i + 3])),
    );
  }
  return { epoch, headSeq: Number(reply[1]), oldestSeq: Number(reply[2]), messages };
}

/** The kometa channel a pub/sub channel `<prefix>{<channel>}` carries, or undefined for another name. */
export function channelOfPubSub(prefix: string, pubsubChannel: string): string | undefined {
  const start = `${prefix}{`;
  if (!pubsubChannel.startsWith(start) || !pubsubChannel.endsWith('}')) return undefined;
  return pubsubChannel.slice(start.length, -1);
}

/**
 * `epoch \n seq \n time \n event[ exclude] \n data`; data may itself contain
 * newlines, so only the first four count.
 */
export function parsePayload(channel: string, payload: string): Message | undefined {
  const a = payload.indexOf('\n');
  const b = payload.indexOf('\n', a + 1);
  const c = payload.indexOf('\n', b + 1);
  const d = payload.indexOf('\n', c + 1);
  if (a < 0 || b < 0 || c < 0 || d < 0) return undefined;
  const seq = Number(payload.slice(a + 1, b));
  const time = Number(payload.slice(b + 1, c));
  if (!Number.isSafeInteger(seq) || !Number.isFinite(time)) return undefined;
  const space = payload.indexOf(' ', c + 1);
  const event = space < 0 || space > d ? payload.slice(c + 1, d) : payload.slice(c + 1, space);
  const message = makeMessage(channel, payload.slice(0, a), seq, time, event, payload.slice(d + 1));
  return space < 0 || space > d ? message : withExclude(message, payload.slice(space + 1, d));
}
