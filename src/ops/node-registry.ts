import type { ClusterMember, MemberStats } from './stats-types.js';

/** What the registry needs of a Redis connection: a single Redis's command link and ioredis's Cluster both fit. */
export interface ScriptRunner {
  readonly status: string;
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/*
 * Every node sharing a Redis, kept in that Redis: a sorted set of node ids
 * scored by when each record expires, and a hash of the records. One script
 * both writes this node's record and reads everyone's, so a beat is one round
 * trip. Time is Redis's (TIME), one clock for all nodes, so a node whose own
 * clock is off is still judged fairly. Both keys carry the same hash tag: in a
 * Redis Cluster they live in one slot. Records expired for `forget` ms are
 * removed, and the keys themselves expire when no node beats any more.
 */
const BEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
local forget = tonumber(ARGV[4])
if ARGV[5] == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return {}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - forget)
for _, id in ipairs(gone) do
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
redis.call('PEXPIRE', KEYS[1], forget + ttl)
redis.call('PEXPIRE', KEYS[2], forget + ttl)
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local out = {}
for i = 1, #all, 2 do
  out[#out + 1] = redis.call('HGET', KEYS[2], all[i]) or ''
  out[#out + 1] = tostring(tonumber(all[i + 1]) - now)
end
return out
`;

export interface NodeRegistryOptions {
  /** A record not renewed for this long shows as down. */
  readonly ttlMs: number;
  /** A node down for this long is dropped from the list. */
  readonly forgetMs: number;
}

export class RedisNodeRegistry {
  readonly #redis: ScriptRunner;
  readonly #keys: [string, string];
  readonly #options: NodeRegistryOptions;
  #members: readonly Omit<ClusterMember, 'self'>[] = [];

  constructor(redis: ScriptRunner, prefix: string, options: NodeRegistryOptions) {
    this.#redis = redis;
    // `prefix` + a word, never `prefix{`: channel keys start with `prefix{channel}`, so no channel can collide.
    this.#keys = [`${prefix}nodes{kometa-nodes}.z`, `${prefix}nodes{kometa-nodes}.h`];
    this.#options = options;
  }

  /** Write this node's record and read every node's; while Redis is away, the last list is kept. */
  async report(member: MemberStats): Promise<void> {
    if (this.#redis.status !== 'ready') return;
    const { ttlMs, forgetMs } = this.#options;
    const record = JSON.stringify(member);
    const answer = await this.#redis.eval(BEAT, 2, ...this.#keys, member.id, record, ttlMs, forgetMs, '');
    if (!Array.isArray(answer)) return;
    const members: Omit<ClusterMember, 'self'>[] = [];
    for (let i = 0; i + 1 < answer.length; i += 2) {
      const record = parseMember(answer[i]);
      if (record !== undefined) members.push({ ...record, state: Number(answer[i + 1]) >= 0 ? 'up' : 'down' });
    }
    this.#members = members;
  }

  get members(): readonly Omit<ClusterMember, 'self'>[] {
    return this.#members;
  }

  /** A node that stops cleanly leaves the list at once instead of showing as down. */
  async leave(id: string): Promise<void> {
    if (this.#redis.status !== 'ready') return;
    const { ttlMs, forgetMs } = this.#options;
    await this.#redis.eval(BEAT, 2, ...this.#keys, id, '', ttlMs, forgetMs, 'leave');
  }
}

function parseMember(text: unknown): MemberStats | undefined {
  if (typeof text !== 'string' || text === '') return undefined;
  try {
    const value = JSON.parse(text) as MemberStats;
    return typeof value.id === 'string' && typeof value.pid === 'number' ? value : undefined;
  } catch {
    return undefined;
  }
}
