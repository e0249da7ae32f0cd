import { randomBytes } from 'node:crypto';
import {
  type Member,
  type PresenceChange,
  type PresenceSnapshot,
  type PresenceStore,
  pageOf,
} from '../core/presence.js';

/*
 * Members in Redis, shared by every kometa node and worker on it.
 *
 *   <prefix>{<channel>}.m            hash: client id → "<node>|<member JSON>"
 *   <prefix>presence:nodes           set of node ids that hold (or held) members
 *   <prefix>presence:{<node>}        "alive" key, PX ttl, refreshed every ttl/3
 *   <prefix>presence:{<node>}.c      set of the channels that node put members in
 *
 * A member belongs to the node that wrote it. Join and leave are Lua scripts
 * on the channel's hash (one slot, also on Redis Cluster), so the one call
 * that adds the first member or removes the last one is the one that sees the
 * transition: exactly one node reports "occupied" or "vacated". A node that
 * dies stops refreshing its alive key; at the next heartbeat any other node
 * sees it gone and removes that node's members channel by channel (again one
 * script each: if two nodes reap at once, each member is removed, and each
 * emptied channel reported, once).
 */

/** The commands the store sends: an ioredis Redis or Cluster has them (EVAL routes by the first key). */
export interface PresenceLink {
  readonly status: string;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

const JOIN = `
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if existed == 1 then return {0, 0} end
if redis.call('HLEN', KEYS[1]) == 1 then return {1, 1} end
return {1, 0}`;

/** Remove the member only while this node owns it (a quick reconnect to another node may have taken it over). */
const LEAVE = `
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v or string.sub(v, 1, #ARGV[2]) ~= ARGV[2] then return {0, 0} end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HLEN', KEYS[1]) == 0 then return {1, 1} end
return {1, 0}`;

const REAP = `
local all = redis.call('HGETALL', KEYS[1])
local gone = {}
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    gone[#gone + 1] = all[i + 1]
  end
end
local vacated = 0
if #gone > 0 and redis.call('HLEN', KEYS[1]) == 0 then vacated = 1 end
return {vacated, gone}`;

const HEARTBEAT = `
local alive = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
return alive`;

const SADD = "return redis.call('SADD', KEYS[1], ARGV[1])";
const SREM = "return redis.call('SREM', KEYS[1], ARGV[1])";
const SMEMBERS = "return redis.call('SMEMBERS', KEYS[1])";
const EXISTS = "return redis.call('EXISTS', KEYS[1])";
const DEL = "return redis.call('DEL', KEYS[1])";
const HLEN = "return redis.call('HLEN', KEYS[1])";
const HGETALL = "return redis.call('HGETALL', KEYS[1])";
const HSCAN = "return redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])";

/** Above this many members, a presence answer pages with HSCAN instead of reading the whole hash. */
const WHOLE_READ_LIMIT = 10_000;

export interface RedisPresenceOptions {
  /** A node's members are dropped this long after it stops refreshing them (it died). Default 15 s. */
  readonly ttlMs?: number;
}

export class RedisPresenceStore implements PresenceStore {
  readonly nodeId = randomBytes(8).toString('hex');
  readonly ttlMs: number;
  readonly #owner: string;
  readonly #registered = new Set<string>();
  readonly #timer: NodeJS.Timeout;
  #reapListener: (channel: string, gone: Member[], vacated: boolean) => void = () => {};
  #rejoinListener: (channel: string, member: Member, occupied: boolean) => void = () => {};
  /** A join failed (Redis unreachable): every member is written again at the next heartbeat that gets through. */
  #resync = false;
  /** Leaves that failed: retried at each heartbeat, so that no entry of a live node is left behind. */
  readonly #failedLeaves = new Map<string, { channel: string; member: Member }>();
  #held: () => Iterable<{ channel: string; member: Member }> = () => [];
  #beating = false;
  #closed = false;

  constructor(
    private readonly link: PresenceLink,
    private readonly prefix: string,
    options: RedisPresenceOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 15_000;
    this.#owner = `${this.nodeId}|`;
    this.#timer = setInterval(() => void this.heartbeat(), Math.max(100, Math.floor(this.ttlMs / 3)));
    this.#timer.unref();
    void this.heartbeat();
  }

  setReapListener(listener: (channel: string, gone: Member[], vacated: boolean) => void): void {
    this.#reapListener = listener;
  }

  setHeld(held: () => Iterable<{ channel: string; member: Member }>): void {
    this.#held = held;
  }

  setRejoinListener(listener: (channel: string, member: Member, occupied: boolean) => void): void {
    this.#rejoinListener = listener;
  }

  #members(channel: string): string {
    return `${this.prefix}{${channel}}.m`;
  }

  #alive(node: string): string {
    return `${this.prefix}presence:{${node}}`;
  }

  #channelsOf(node: string): string {
    return `${this.prefix}presence:{${node}}.c`;
  }

  get #nodes(): string {
    return `${this.prefix}presence:nodes`;
  }

  async join(channel: string, member: Member): Promise<PresenceChange> {
    this.#failedLeaves.delete(`${channel}\u0000${member.client}`);
    try {
      return await this.#join(channel, member);
    } catch (error) {
      this.#resync = true;
      throw error;
    }
  }

  async #join(channel: string, member: Member): Promise<PresenceChange> {
    // Recorded before the member, so that a reaper always finds where this node's members are.
    if (!this.#registered.has(channel)) {
      await this.link.eval(SADD, 1, this.#channelsOf(this.nodeId), channel);
      this.#registered.add(channel);
    }
    const value = this.#owner + JSON.stringify(member);
    const [changed, transition] = (await this.link.eval(JOIN, 1, this.#members(channel), member.client, value)) as [
      number,
      number,
    ];
    return { changed: changed === 1, transition: transition === 1 };
  }

  async leave(channel: string, member: Member): Promise<PresenceChange> {
    try {
      return await this.#leave(channel, member.client);
    } catch (error) {
      this.#failedLeaves.set(`${channel}\u0000${member.client}`, { channel, member });
      throw error;
    }
  }

  async #leave(channel: string, client: string): Promise<PresenceChange> {
    const [changed, transition] = (await this.link.eval(LEAVE, 1, this.#members(channel), client, this.#owner)) as [
      number,
      number,
    ];
    return { changed: changed === 1, transition: transition === 1 };
  }

  async count(channel: string): Promise<number> {
    return Number(await this.link.eval(HLEN, 1, this.#members(channel)));
  }

  async snapshot(channel: string, limit: number, after: string | null): Promise<PresenceSnapshot> {
    const key = this.#members(channel);
    const count = Number(await this.link.eval(HLEN, 1, key));
    if (count <= WHOLE_READ_LIMIT && (after === null || !after.startsWith('~'))) {
      const flat = (await this.link.eval(HGETALL, 1, key)) as string[];
      const all: Member[] = [];
      for (let i = 1; i < flat.length; i += 2) all.push(parseMember(flat[i]!));
      return pageOf(channel, all, limit, after);
    }
    // A huge channel: one HSCAN step per page; `next` is HSCAN's cursor ("~" marks it), users counts this page.
    const cursor = after?.startsWith('~') === true ? after.slice(1) : '0';
    const [nextCursor, flat] = (await this.link.eval(HSCAN, 1, key, cursor, limit)) as [string, string[]];
    const members: Member[] = [];
    for (let i = 1; i < flat.length; i += 2) members.push(parseMember(flat[i]!));
    const users = new Set(members.map((m) => m.user).filter((u) => u !== null)).size;
    return { channel, count, users, members, next: nextCursor === '0' ? null : `~${nextCursor}` };
  }

  /**
   * Refresh this node's alive key, re-register its members if it had been
   * declared dead (a stall longer than the TTL), and reap the members of
   * nodes that stopped refreshing theirs.
   */
  async heartbeat(): Promise<void> {
    if (this.#beating || this.#closed || this.link.status !== 'ready') return;
    this.#beating = true;
    try {
      const wasAlive = Number(await this.link.eval(HEARTBEAT, 1, this.#alive(this.nodeId), this.ttlMs));
      await this.link.eval(SADD, 1, this.#nodes, this.nodeId);
      if (wasAlive === 0 || this.#resync) await this.#reregister();
      await this.#retryLeaves();
      const nodes = (await this.link.eval(SMEMBERS, 1, this.#nodes)) as string[];
      for (const node of nodes) {
        if (node === this.nodeId || this.#closed) continue;
        if (Number(await this.link.eval(EXISTS, 1, this.#alive(node))) === 0) await this.#reap(node);
      }
    } catch {
      // Redis is unreachable: the next heartbeat tries again.
    } finally {
      this.#beating = false;
    }
  }

  /** Write every member held here again; those that were missing (reaped, or never written) join again. */
  async #reregister(): Promise<void> {
    this.#resync = false;
    this.#registered.clear();
    for (const { channel, member } of [...this.#held()]) {
      const change = await this.join(channel, member);
      if (change.changed) this.#rejoinListener(channel, member, change.transition);
    }
  }

  /** Leaves that failed while Redis was away; a leave that now finds the channel empty reports it as usual. */
  async #retryLeaves(): Promise<void> {
    for (const [key, { channel, member }] of [...this.#failedLeaves]) {
      const change = await this.#leave(channel, member.client);
      this.#failedLeaves.delete(key);
      if (change.changed) this.#reapListener(channel, [member], change.transition);
    }
  }

  async #reap(node: string): Promise<void> {
    const channels = (await this.link.eval(SMEMBERS, 1, this.#channelsOf(node))) as string[];
    const owner = `${node}|`;
    for (const channel of channels) {
      const [vacated, gone] = (await this.link.eval(REAP, 1, this.#members(channel), owner)) as [number, string[]];
      if (gone.length > 0) this.#reapListener(channel, gone.map(parseMember), vacated === 1);
    }
    await this.link.eval(DEL, 1, this.#channelsOf(node));
    await this.link.eval(SREM, 1, this.#nodes, node);
  }

  /** Stop refreshing; the members were left by the hub already. The node's records go too (nothing left to reap). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.link.status !== 'ready') return;
    await Promise.allSettled([
      this.link.eval(DEL, 1, this.#channelsOf(this.nodeId)),
      this.link.eval(DEL, 1, this.#alive(this.nodeId)),
      this.link.eval(SREM, 1, this.#nodes, this.nodeId),
    ]);
  }
}

function parseMember(value: string): Member {
  const json = value.slice(value.indexOf('|') + 1);
  const parsed = JSON.parse(json) as Member;
  return {
    client: parsed.client,
    user: parsed.user ?? null,
    info: parsed.info ?? null,
    transport: parsed.transport,
    since: parsed.since,
  };
}
