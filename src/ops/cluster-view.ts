import cluster from 'node:cluster';
import { hostname } from 'node:os';
import { RedisBroker } from '../brokers/redis.js';
import { RedisClusterBroker } from '../brokers/redis-cluster.js';
import type { Broker } from '../core/broker.js';
import { WorkerRoster } from './cluster-roster.js';
import { RedisNodeRegistry, type ScriptRunner } from './node-registry.js';
import type { ClusterMember, ClusterSnapshot, ClusterTotals, MemberStats, StatsSample } from './stats-types.js';

export interface ClusterViewOptions {
  /** How often this process reports itself. Default 2000 ms. */
  readonly beatMs?: number;
  /** A member not heard from for this long shows as down. Default three beats. */
  readonly downAfterMs?: number;
  /** A node down for this long is dropped from the Redis list. Default 5 minutes. */
  readonly forgetMs?: number;
}

/**
 * One view of the whole deployment for the dashboard: this process's record,
 * sent every beat to the primary (under --workers) and to Redis (when the
 * broker is Redis or Redis Cluster), and the lists both send back.
 */
export class ClusterView {
  readonly #id: string;
  readonly #beatMs: number;
  readonly #downAfterMs: number;
  readonly #roster: WorkerRoster | undefined;
  readonly #registry: RedisNodeRegistry | undefined;
  readonly #timer: NodeJS.Timeout;
  #self: MemberStats | undefined;

  constructor(broker: Broker, options: ClusterViewOptions = {}) {
    this.#id = `${hostname()}:${process.pid}`;
    this.#beatMs = options.beatMs ?? 2000;
    this.#downAfterMs = options.downAfterMs ?? 3 * this.#beatMs;
    this.#roster = WorkerRoster.create();
    const redis = redisOf(broker);
    this.#registry =
      redis === undefined
        ? undefined
        : new RedisNodeRegistry(redis.runner, redis.prefix, {
            ttlMs: this.#downAfterMs,
            forgetMs: options.forgetMs ?? 5 * 60_000,
          });
    this.#timer = setInterval(() => this.#beat(), this.#beatMs);
    this.#timer.unref();
  }

  /** The latest stats sample of this process (the dashboard's sampler takes one a second). */
  update(sample: StatsSample): void {
    const first = this.#self === undefined;
    this.#self = {
      id: this.#id,
      host: hostname(),
      pid: sample.pid,
      ...(cluster.isWorker && cluster.worker !== undefined ? { worker: cluster.worker.id } : {}),
      t: sample.t,
      uptime: sample.uptime,
      connections: sample.connections,
      subscriptions: sample.subscriptions,
      channels: sample.channels,
      rates: { published: sample.rates.published, delivered: sample.rates.delivered },
      rss: sample.memory.rss,
      brokerOk: sample.broker.ok,
    };
    // Report at once the first time, so that a new process is listed without waiting a beat.
    if (first) this.#beat();
  }

  #beat(): void {
    const self = this.#self;
    if (self === undefined) return;
    this.#roster?.report(self, this.#downAfterMs);
    // A failed beat changes nothing here; other nodes will see this one's record age and show it down.
    this.#registry?.report(self).catch(() => {});
  }

  snapshot(): ClusterSnapshot {
    const mark = (list: readonly Omit<ClusterMember, 'self'>[]) =>
      [...list]
        .map((m) => ({ ...m, self: m.id === this.#id }))
        .sort((a, b) => a.host.localeCompare(b.host) || a.pid - b.pid);
    const workers = this.#roster === undefined ? undefined : mark(this.#roster.members);
    const nodes = this.#registry === undefined ? undefined : mark(this.#registry.members);
    const alone: ClusterMember[] = this.#self === undefined ? [] : [{ ...this.#self, state: 'up', self: true }];
    const counted = nodes !== undefined && nodes.length > 0 ? nodes : workers?.length ? workers : alone;
    return {
      self: this.#id,
      ...(workers === undefined ? {} : { workers }),
      ...(nodes === undefined ? {} : { nodes }),
      totals: totalsOf(counted),
      beatSeconds: this.#beatMs / 1000,
      downAfterSeconds: this.#downAfterMs / 1000,
    };
  }

  close(): void {
    clearInterval(this.#timer);
    this.#roster?.close();
    this.#registry?.leave(this.#id).catch(() => {});
  }
}

function totalsOf(members: readonly ClusterMember[]): ClusterTotals {
  const up = members.filter((m) => m.state === 'up');
  const sum = (pick: (m: ClusterMember) => number) => up.reduce((total, m) => total + pick(m), 0);
  return {
    up: up.length,
    down: members.length - up.length,
    connections: sum((m) => m.connections.sse + m.connections.stream + m.connections.poll + m.connections.ws),
    subscriptions: sum((m) => m.subscriptions),
    rates: { published: sum((m) => m.rates.published), delivered: sum((m) => m.rates.delivered) },
  };
}

function redisOf(broker: Broker): { runner: ScriptRunner; prefix: string } | undefined {
  if (broker instanceof RedisBroker) return { runner: broker.links.commands, prefix: broker.links.prefix };
  if (broker instanceof RedisClusterBroker) return broker.scripts;
  return undefined;
}
