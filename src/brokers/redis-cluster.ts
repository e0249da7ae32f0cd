import { createHash } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import type { Broker, BrokerHealth, ChannelStats, PublishOptions } from '../core/broker.js';
import type { Clock } from '../core/clock.js';
import { newEpoch } from '../core/epoch.js';
import { KometaError } from '../core/errors.js';
import { type HistoryLimits, defaultHistoryLimits } from '../core/history.js';
import type { ChannelHead, HistoryRead, Message } from '../core/message.js';
import type { PresenceStore } from '../core/presence.js';
import { RedisPresenceStore } from './redis-presence.js';
import {
  type RecoveringNode,
  catchUpChannel,
  channelOfPubSub,
  makeMessage,
  parsePayload,
  raise,
  redisConnectionOptions,
  toHistoryRead,
} from './redis.js';
import { PUBLISH_SCRIPT, type Script, readScript } from './redis-scripts.js';

export interface RedisClusterBrokerOptions {
  /**
   * Seed nodes: `host:port` or `redis://[user:password@]host:port`; any few
   * nodes of the cluster will do, the rest is discovered (CLUSTER SLOTS).
   */
  readonly nodes: readonly string[];
  /** Prepended to every key and shard channel. Default `kometa:`. */
  readonly prefix?: string;
  readonly history?: Partial<HistoryLimits>;
  /** See RedisBrokerOptions.channelTtlMs. */
  readonly channelTtlMs?: number;
  /** Time for message stamps and history age. Default: Redis's own clock (`TIME`). */
  readonly clock?: Clock;
  /** A command that gets no answer in this time fails (and a publish answers 503). Default 2000. */
  readonly commandTimeoutMs?: number;
  /** A dead node's presence members are dropped within this long (see docs/presence.md). Default 15000. */
  readonly presenceTtlMs?: number;
  /** Reconnect backoff of each connection: doubling from `minMs` to `maxMs`, with jitter. Default 100 / 3000. */
  readonly reconnect?: { readonly minMs?: number; readonly maxMs?: number };
  /**
   * While a shard is unreachable (a master died and its replica is not
   * promoted yet), the slot map is asked for again this often, so the new
   * master is found as soon as the cluster has one. Default 250.
   */
  readonly topologyPollMs?: number;
}

const errorChannel = diagnostics.channel('kometa:broker:error');

const CLAIM_ONCE = "if redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX') then return 1 else return 0 end";

/*
 * The same script as the single-Redis broker's, with one difference: the new
 * message goes out with SPUBLISH, to the shard that owns the channel's slot
 * (and its replicas) only, instead of PUBLISH, which Redis Cluster copies to
 * every node of the cluster.
 */
const PLAIN_PUBLISH = "redis.call('PUBLISH', pubsub,";
if (!PUBLISH_SCRIPT.includes(PLAIN_PUBLISH))
  throw new Error('redis-cluster: the publish script no longer publishes with PUBLISH');
const SHARDED_PUBLISH_SCRIPT = PUBLISH_SCRIPT.replace(PLAIN_PUBLISH, "redis.call('SPUBLISH', pubsub,");
const shardedPublishScript: Script = {
  source: SHARDED_PUBLISH_SCRIPT,
  sha: createHash('sha1').update(SHARDED_PUBLISH_SCRIPT).digest('hex'),
};

/**
 * One subscriber connection to one master, carrying the SSUBSCRIBEs of the
 * watched channels whose slots that master owns. `ready` only once every one
 * of them is subscribed and checked (see RedisClusterBroker.#recover): until
 * then publishes to its slots answer 503, so nothing is published on a
 * promoted replica before this node has compared it with what it has seen.
 */
interface Shard {
  readonly key: string;
  readonly link: Redis;
  state: 'connecting' | 'recovering' | 'ready' | 'closed';
  /** Bumped on every (re)connect, so a recovery that was overtaken by a reconnect stops. */
  generation: number;
}

/**
 * The Redis broker on a Redis Cluster (7.x). Keys and scripts are the same as
 * on one Redis; each channel's keys carry the hash tag `{channel}`, so a
 * channel lives in one slot and its positions are handed out by one master,
 * in one total order, however many kometa nodes publish. Commands go through
 * an ioredis `Cluster` (which follows MOVED and ASK); fan-out between kometa
 * nodes uses sharded pub/sub: the publish script SPUBLISHes on the channel's
 * shard, and this broker keeps one subscriber connection per master that
 * SSUBSCRIBEs the watched channels of that master's slots.
 *
 * A failover (a master dies, its replica is promoted): the shard's subscriber
 * connection drops, publishes to that master's slots answer 503 at once, and
 * the slot map is polled until the cluster names the new master. The broker
 * then subscribes there, runs the rollback check of every watched channel of
 * those slots (a replica that had not caught up starts a new epoch instead of
 * handing out positions already seen) and hands the newest message to the
 * listener so the hub catches subscribers up; only then are that shard's
 * publishes accepted again.
 *
 * Why not ioredis's own `shardedSubscribers`: it resubscribes in the
 * background and says nothing per shard once the SSUBSCRIBE is answered, and
 * the catch-up and the publish gate above need exactly that moment.
 */
export class RedisClusterBroker implements Broker {
  readonly #cluster: Cluster;
  readonly #presenceTtlMs: number | undefined;
  readonly #prefix: string;
  readonly #limits: HistoryLimits;
  readonly #channelTtlMs: number;
  readonly #clock: Clock | undefined;
  readonly #where: string;
  readonly #nodeOptions: RedisOptions;
  readonly #topologyPollMs: number;
  readonly #commandTimeoutMs: number;
  #listener: (message: Message) => void = () => {};
  /** Watched channels → the SSUBSCRIBE in flight for them (head() waits for it). */
  readonly #watched = new Map<string, Promise<void>>();
  /** Watched channel → the master whose subscriber carries it. */
  readonly #homes = new Map<string, string>();
  readonly #seen = new Map<string, { epoch: string; seq: number }>();
  readonly #confirmed = new Map<string, { epoch: string; seq: number }>();
  /** One subscriber per master, by `host:port`. */
  readonly #shards = new Map<string, Shard>();
  #lastError: string | undefined;
  #closed = false;
  #pollTimer: NodeJS.Timeout | undefined;
  #everReady: Promise<void>;
  #resolveReady: () => void = () => {};

  constructor(options: RedisClusterBrokerOptions) {
    if (options.nodes.length === 0) throw new TypeError('RedisClusterBroker needs at least one seed node');
    this.#prefix = options.prefix ?? 'kometa:';
    this.#presenceTtlMs = options.presenceTtlMs;
    this.#limits = { ...defaultHistoryLimits, ...options.history };
    this.#channelTtlMs = options.channelTtlMs ?? this.#limits.maxAgeMs + 24 * 60 * 60 * 1000;
    this.#clock = options.clock;
    this.#topologyPollMs = options.topologyPollMs ?? 250;
    this.#commandTimeoutMs = options.commandTimeoutMs ?? 2000;
    const seeds = options.nodes.map(parseSeed);
    const credentials = seeds.find((s) => s.password !== undefined || s.username !== undefined);
    const base = redisConnectionOptions({ commandTimeoutMs: options.commandTimeoutMs, reconnect: options.reconnect });
    this.#nodeOptions = {
      ...base,
      username: credentials?.username,
      password: credentials?.password,
      tls: seeds[0]!.tls ? {} : undefined,
    };
    // Never echo credentials: name the seeds by host and port only.
    this.#where = `Redis Cluster (seeds ${seeds.map((s) => `${s.host}:${s.port}`).join(',')})`;
    const clusterOptions: ClusterOptions = {
      // As on one Redis: a command is sent now or fails now, and is never sent twice.
      enableOfflineQueue: false,
      // A command whose connection closed under it may have run: not retried
      // (ioredis would, after 100 ms, which could store a message twice).
      // MOVED, ASK, TRYAGAIN and CLUSTERDOWN are still followed: those ran nowhere.
      retryDelayOnFailover: 0,
      retryDelayOnClusterDown: 100,
      maxRedirections: 16,
      // Slot migrations are noticed from MOVED replies, and by this slow poll.
      slotsRefreshInterval: 5000,
      slotsRefreshTimeout: Math.max(1000, Math.min(this.#commandTimeoutMs, 5000)),
      clusterRetryStrategy: base.retryStrategy as (attempt: number) => number,
      redisOptions: this.#nodeOptions,
      // The ready check (CLUSTER INFO) would be sent while the node
      // connections are still being made, and without an offline queue it
      // fails; the gate on each shard's subscriber says when a slot is usable.
      enableReadyCheck: false,
    };
    this.#cluster = new Cluster(
      seeds.map((s) => ({ host: s.host, port: s.port })),
      clusterOptions,
    );
    this.#everReady = new Promise((resolve) => (this.#resolveReady = resolve));
    this.#cluster.on('error', (error: Error) => this.#noteError(error));
    this.#cluster.on('node error', (error: Error) => this.#noteError(error));
    this.#cluster.on('refresh', () => this.#onTopology());
    this.#cluster.on('ready', () => {
      this.#lastError = undefined;
      this.#onTopology();
    });
  }

  #noteError(error: Error): void {
    this.#lastError = error.message;
    if (errorChannel.hasSubscribers) errorChannel.publish({ broker: 'redis-cluster', error });
  }

  /**
   * Resolves once the slot map is known and every master's subscriber is ready (the CLI waits for it before it
   * listens).
   */
  ready(): Promise<void> {
    return this.#everReady.then(() => this.#openMasters());
  }

  /**
   * ioredis opens a node's command connection on the first command sent to
   * it, and with no offline queue that first command fails: open every
   * master's connection before saying ready (each bounded, so that one slow
   * master does not hold start-up; its first publishes may then answer 503).
   */
  async #openMasters(): Promise<void> {
    await Promise.all(
      this.#cluster.nodes('master').map(async (node) => {
        if (node.status === 'wait') await node.connect().catch(() => {});
        if (node.status === 'ready') return;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => node.once('ready', () => resolve())),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000))),
        ]);
        clearTimeout(timer);
      }),
    );
  }

  #keys(channel: string): [meta: string, stream: string] {
    return [`${this.#prefix}{${channel}}.h`, `${this.#prefix}{${channel}}.s`];
  }

  #pubsubName(channel: string): string {
    return `${this.#prefix}{${channel}}`;
  }

  /** The master that owns `channel`'s slot, as the slot map last said. */
  #ownerOf(channel: string): string | undefined {
    return this.#cluster.slots[keySlot(this.#pubsubName(channel))]?.[0];
  }

  #commonArgs(): (string | number)[] {
    const { maxMessages, maxBytes, maxAgeMs } = this.#limits;
    return [newEpoch(), maxMessages, maxBytes, maxAgeMs, this.#clock?.now() ?? '', this.#channelTtlMs];
  }

  /** Run a script on the channel's master, failing fast (503) while its shard is not known to be well. */
  async #run(script: Script, channel: string, args: (string | number)[], gate = true): Promise<unknown[]> {
    if (this.#closed) throw new KometaError('KOMETA_ERR_BROKER_UNAVAILABLE', 'The message store is closed');
    if (this.#cluster.status !== 'ready') throw this.#unavailable();
    if (gate) {
      const owner = this.#ownerOf(channel);
      const shard = owner === undefined ? undefined : this.#shards.get(owner);
      if (shard?.state !== 'ready')
        throw this.#unavailable(
          owner === undefined
            ? 'its slot has no master'
            : `the master of its slot, ${owner}, is unreachable or failing over`,
        );
    }
    const keys = this.#keys(channel);
    try {
      try {
        return (await this.#cluster.evalsha(script.sha, 2, ...keys, ...args)) as unknown[];
      } catch (error) {
        // A promoted replica, or a restarted node, has an empty script cache: send the source once.
        if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error;
        return (await this.#cluster.eval(script.source, 2, ...keys, ...args)) as unknown[];
      }
    } catch (error) {
      this.#noteError(error as Error);
      // A connection that just failed is often the first sign of a failover: look again now.
      this.#pollTopology();
      throw this.#unavailable();
    }
  }

  #unavailable(why?: string): KometaError {
    const reason = why ?? this.#lastError;
    return new KometaError(
      'KOMETA_ERR_BROKER_UNAVAILABLE',
      `${this.#where} is unavailable${reason ? ` (${reason})` : ''}; retry shortly`,
    );
  }

  async claimOnce(key: string, ttlMs: number): Promise<boolean> {
    if (this.#closed || this.#cluster.status !== 'ready') throw this.#unavailable();
    try {
      const won = await this.#cluster.eval(CLAIM_ONCE, 1, `${this.#prefix}once:${key}`, Math.max(1, Math.ceil(ttlMs)));
      return won === 1;
    } catch {
      throw this.#unavailable();
    }
  }

  async publish(channel: string, data: string, options: PublishOptions = {}): Promise<Message> {
    const event = options.event ?? '';
    const reply = await this.#run(shardedPublishScript, channel, [
      ...this.#commonArgs(),
      data,
      event,
      this.#pubsubName(channel),
      options.exclude ?? '',
    ]);
    const message = makeMessage(channel, String(reply[0]), Number(reply[1]), Number(reply[2]), event, data);
    if (this.#watched.has(channel)) raise(this.#confirmed, message);
    return message;
  }

  async read(channel: string, afterSeq: number): Promise<HistoryRead> {
    // Reads are not gated: history of a well shard is served while another fails over.
    const reply = await this.#run(readScript, channel, [...this.#commonArgs(), 'after', afterSeq], false);
    return toHistoryRead(channel, reply);
  }

  async head(channel: string): Promise<ChannelHead> {
    // As on one Redis: the SSUBSCRIBE must be in place before the head is read.
    const subscribing = this.#watched.get(channel);
    if (subscribing !== undefined) await subscribing;
    const reply = await this.#run(readScript, channel, [...this.#commonArgs(), 'head', 0], false);
    const head = { epoch: String(reply[0]), seq: Number(reply[1]) };
    if (this.#watched.has(channel)) raise(this.#confirmed, { channel, ...head });
    return head;
  }

  async stats(channel: string): Promise<ChannelStats> {
    const reply = await this.#run(readScript, channel, [...this.#commonArgs(), 'stats', 0], false);
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
    const owner = this.#ownerOf(channel);
    const shard = owner === undefined ? undefined : this.#shards.get(owner);
    if (shard === undefined || shard.state === 'closed' || shard.link.status !== 'ready') {
      // The shard's recovery subscribes it (and catches it up) once it is back.
      this.#watched.set(channel, Promise.resolve());
      return;
    }
    this.#homes.set(channel, shard.key);
    this.#watched.set(
      channel,
      this.#ssubscribe(shard, [channel]).catch(() => {}),
    );
  }

  unwatch(channel: string): void {
    if (!this.#watched.delete(channel)) return;
    this.#seen.delete(channel);
    this.#confirmed.delete(channel);
    const home = this.#homes.get(channel);
    this.#homes.delete(channel);
    const shard = home === undefined ? undefined : this.#shards.get(home);
    if (shard !== undefined && shard.link.status === 'ready') {
      withTimeout(shard.link.sunsubscribe(this.#pubsubName(channel)), this.#commandTimeoutMs).catch(() => {});
    }
  }

  /** SSUBSCRIBE `channels` on `shard`, one command per slot (Redis refuses channels of several slots in one). */
  #ssubscribe(shard: Shard, channels: string[]): Promise<void> {
    const bySlot = new Map<number, string[]>();
    for (const channel of channels) {
      const slot = keySlot(this.#pubsubName(channel));
      const list = bySlot.get(slot);
      if (list === undefined) bySlot.set(slot, [this.#pubsubName(channel)]);
      else list.push(this.#pubsubName(channel));
    }
    // ioredis never settles an SSUBSCRIBE answered with MOVED (it only emits
    // 'moved'): without the timeout a slot that moved away would hang here.
    return Promise.all(
      [...bySlot.values()].map((names) => withTimeout(shard.link.ssubscribe(...names), this.#commandTimeoutMs)),
    ).then(() => {});
  }

  /**
   * The slot map changed (or was read again): one subscriber per master, no
   * more; a watched channel whose slot has a new master moves there.
   */
  #onTopology(): void {
    if (this.#closed || this.#cluster.slots.length === 0) return;
    const masters = new Set<string>();
    for (const owners of this.#cluster.slots) if (owners?.[0] !== undefined) masters.add(owners[0]);
    for (const [key, shard] of this.#shards) {
      if (masters.has(key)) continue;
      shard.state = 'closed';
      shard.link.disconnect();
      this.#shards.delete(key);
    }
    for (const key of masters) if (!this.#shards.has(key)) this.#openShard(key);
    // Channels whose slot moved to another (already ready) master: subscribe and check them there.
    const moved = new Map<Shard, string[]>();
    const left = new Set<Shard>();
    for (const channel of this.#watched.keys()) {
      const owner = this.#ownerOf(channel);
      const home = this.#homes.get(channel);
      if (owner === undefined || home === owner) continue;
      const previous = home === undefined ? undefined : this.#shards.get(home);
      if (previous !== undefined) {
        left.add(previous);
        this.#homes.delete(channel);
      }
      const shard = this.#shards.get(owner);
      if (shard?.state !== 'ready') continue; // its recovery takes the channel
      const list = moved.get(shard);
      if (list === undefined) moved.set(shard, [channel]);
      else list.push(channel);
    }
    for (const [shard, channels] of moved)
      this.#adopt(shard, channels, shard.generation).catch(() => this.#pollTopology());
    // A master that gave slots away tells its shard subscribers with an unasked-for
    // SUNSUBSCRIBE, which ioredis cannot match to a command; a fresh connection (and
    // a recovery of the channels it still owns) leaves no such confusion behind.
    for (const shard of left)
      if (shard.state !== 'closed' && shard.link.status === 'ready') shard.link.disconnect(true);
    this.#checkAllReady();
  }

  #openShard(key: string): void {
    const [host, port] = splitHostPort(key);
    const link = new Redis({
      ...this.#nodeOptions,
      host,
      port,
      autoResubscribe: false,
      connectionName: 'kometa-ssubscriber',
    });
    const shard: Shard = { key, link, state: 'connecting', generation: 0 };
    this.#shards.set(key, shard);
    link.on('error', (error: Error) => this.#noteError(error));
    link.on('smessage', (name: string, payload: string) => this.#onPubSub(name, payload));
    link.on('moved', () => this.#pollTopology());
    link.on('close', () => {
      if (shard.state === 'closed') return;
      shard.state = 'connecting';
      shard.generation++;
      // The master may be gone for good: find out who owns its slots now.
      this.#pollTopology();
    });
    link.on('ready', () => {
      if (shard.state === 'closed') return;
      shard.state = 'recovering';
      const generation = ++shard.generation;
      this.#recover(shard, generation);
    });
  }

  /**
   * After a shard's subscriber (re)connects: subscribe every watched channel
   * its master owns, check each against what this node has seen, catch up,
   * and only then accept publishes to its slots. Tried again until it works
   * or the connection changes under it.
   */
  #recover(shard: Shard, generation: number): void {
    const current = () => shard.state === 'recovering' && shard.generation === generation;
    const attempt = async () => {
      let channels = [...this.#watched.keys()].filter((c) => this.#ownerOf(c) === shard.key);
      await this.#adopt(shard, channels, generation);
      // Channels watched while this ran, before the link was ready, are not subscribed yet.
      channels = [...this.#watched.keys()].filter(
        (c) => this.#ownerOf(c) === shard.key && this.#homes.get(c) !== shard.key,
      );
      await this.#adopt(shard, channels, generation);
    };
    attempt().then(
      () => {
        if (!current()) return;
        shard.state = 'ready';
        this.#lastError = undefined;
        this.#checkAllReady();
      },
      () => {
        if (!current()) return;
        // Typically: the cluster's command connection has not found the new master yet.
        this.#pollTopology();
        setTimeout(() => {
          if (current()) this.#recover(shard, generation);
        }, this.#topologyPollMs).unref();
      },
    );
  }

  /**
   * Subscribe `channels` on `shard`, then run the rollback check of each and hand on the newest message where this
   * node is behind.
   */
  async #adopt(shard: Shard, channels: string[], generation: number): Promise<void> {
    if (channels.length === 0) return;
    const subscribed = this.#ssubscribe(shard, channels);
    for (const channel of channels) {
      this.#homes.set(channel, shard.key);
      this.#watched.set(
        channel,
        subscribed.catch(() => {}),
      );
    }
    await subscribed;
    const recovery: RecoveringNode = {
      seen: this.#seen,
      confirmed: this.#confirmed,
      watching: (channel) => this.#watched.has(channel),
      // Not gated on the shard being ready: this recovery is what makes it ready.
      check: (channel, args) => this.#run(readScript, channel, [...this.#commonArgs(), ...args], false),
      deliver: (message) => this.#deliver(message),
    };
    await Promise.all(
      channels.map(async (channel) => {
        if (this.#watched.has(channel) && shard.generation === generation) await catchUpChannel(channel, recovery);
      }),
    );
  }

  /** Ask the cluster for its slot map now, and again while some shard is not well. */
  #pollTopology(): void {
    if (this.#closed || this.#pollTimer !== undefined) return;
    const tick = () => {
      this.#pollTimer = undefined;
      if (this.#closed) return;
      if (this.#cluster.status === 'ready') this.#cluster.refreshSlotsCache();
      const unwell = this.#shards.size === 0 || [...this.#shards.values()].some((s) => s.state !== 'ready');
      if (unwell) {
        this.#pollTimer = setTimeout(tick, this.#topologyPollMs);
        this.#pollTimer.unref();
      }
    };
    tick();
  }

  #checkAllReady(): void {
    if (
      this.#cluster.status === 'ready' &&
      this.#shards.size > 0 &&
      [...this.#shards.values()].every((s) => s.state === 'ready')
    )
      this.#resolveReady();
  }

  #onPubSub(name: string, payload: string): void {
    const channel = channelOfPubSub(this.#prefix, name);
    if (channel === undefined || !this.#watched.has(channel)) return;
    const message = parsePayload(channel, payload);
    if (message !== undefined) this.#deliver(message);
  }

  #deliver(message: Message): void {
    raise(this.#seen, message);
    raise(this.#confirmed, message);
    this.#listener(message);
  }

  /** The cluster connection and key prefix, for what keeps its own keys beside the channels (the node registry). */
  get scripts(): {
    readonly runner: Pick<Cluster, 'status' | 'eval'>;
    readonly prefix: string;
  } {
    return { runner: this.#cluster, prefix: this.#prefix };
  }

  health(): BrokerHealth {
    if (this.#closed) return { ok: false, reason: 'closed' };
    if (this.#cluster.status !== 'ready') {
      const lastError = this.#lastError ? `: ${this.#lastError}` : '';
      return {
        ok: false,
        reason: `${this.#where} is unreachable (${this.#cluster.status}${lastError})`,
      };
    }
    const unwell = [...this.#shards.values()].filter((s) => s.state !== 'ready').map((s) => `${s.key} ${s.state}`);
    if (this.#shards.size === 0) return { ok: false, reason: `${this.#where}: no slot map yet` };
    if (unwell.length > 0)
      return {
        ok: false,
        reason: `${this.#where}: master ${unwell.join(', ')}${this.#lastError ? ` (${this.#lastError})` : ''}`,
      };
    return { ok: true };
  }

  /** Keep the epoch of every watched channel alive, however quiet the channel is. */
  sweep(): void {
    if (this.#cluster.status !== 'ready') return;
    for (const channel of this.#watched.keys()) {
      this.#cluster.pexpire(this.#keys(channel)[0], this.#channelTtlMs).catch(() => {});
    }
  }

  /** Members in Redis, shared by every node (redis-presence.ts); one store (one node id) per hub. */
  presenceStore(): PresenceStore {
    return new RedisPresenceStore(this.#cluster, this.#prefix, { ttlMs: this.#presenceTtlMs });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#pollTimer);
    for (const shard of this.#shards.values()) {
      shard.state = 'closed';
      shard.link.disconnect();
    }
    this.#shards.clear();
    if (this.#cluster.status === 'ready')
      await this.#cluster.quit().then(
        () => {},
        () => this.#cluster.disconnect(),
      );
    else this.#cluster.disconnect();
  }
}

interface Seed {
  readonly host: string;
  readonly port: number;
  readonly username?: string | undefined;
  readonly password?: string | undefined;
  readonly tls: boolean;
}

/** `host:port`, `[::1]:port` or `redis[s]://[user:password@]host:port`. */
export function parseSeed(text: string): Seed {
  const trimmed = text.trim();
  const hasScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed);
  const url = new URL(hasScheme ? trimmed : `redis://${trimmed}`);
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw new TypeError(`not a Redis node: ${text}`);
  const port = url.port === '' ? 6379 : Number(url.port);
  if (url.hostname === '' || !Number.isInteger(port)) throw new TypeError(`not a Redis node (host:port): ${text}`);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls: url.protocol === 'rediss:',
  };
}

function splitHostPort(key: string): [string, number] {
  const colon = key.lastIndexOf(':');
  return [key.slice(0, colon).replace(/^\[|\]$/g, ''), Number(key.slice(colon + 1))];
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/*
 * Redis Cluster's key slot: CRC16 (XMODEM) of the key, or of its hash tag —
 * the part between the first `{` and the next `}` when that is not empty —
 * modulo 16384. kometa's keys and shard channel of one channel share their
 * tag (`{c}` after the prefix), so they are in one slot, which is worked out
 * here from the shard channel's name exactly as Redis does.
 */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[i] = crc;
  }
  return table;
})();

/** The slot of a Redis key (with hash tags), as CLUSTER KEYSLOT answers. */
export function keySlot(key: string): number {
  let bytes = Buffer.from(key);
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) bytes = bytes.subarray(open + 1, close);
  }
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]!;
  return crc % 16384;
}
