import { RedisClusterBroker, parseSeed } from '../brokers/redis-cluster.js';
import { RedisBroker } from '../brokers/redis.js';
import type { HistoryLimits } from '../core/history.js';
import type { Settings } from './settings.js';

/*
 * The three ways to reach Redis — one server (--redis), a Redis Cluster
 * (--redis-cluster) or a master watched by Redis Sentinel (--redis-sentinel
 * with --redis-master) — checked, described and built in one place.
 */

export function usesRedis(settings: Settings): boolean {
  return settings.redis !== '' || settings.redisCluster !== '' || settings.redisSentinel !== '';
}

function addresses(list: string): { host: string; port: number }[] {
  return list
    .split(',')
    .filter((s) => s.trim() !== '')
    .map((s) => {
      const seed = parseSeed(s);
      return { host: seed.host, port: seed.port };
    });
}

/** What is wrong with the Redis settings, in one line; undefined when nothing is. */
export function redisSettingsProblem(settings: Settings): string | undefined {
  const given = [
    settings.redis && '--redis',
    settings.redisCluster && '--redis-cluster',
    settings.redisSentinel && '--redis-sentinel',
  ].filter(Boolean);
  if (given.length > 1) return `${given.join(' and ')} cannot be used together: pick one way to reach Redis`;
  if (settings.redis !== '' && !URL.canParse(settings.redis))
    return '--redis must be a URL like redis://127.0.0.1:6379';
  for (const [flag, list] of [
    ['--redis-cluster', settings.redisCluster],
    ['--redis-sentinel', settings.redisSentinel],
  ] as const) {
    if (list === '') continue;
    try {
      if (addresses(list).length === 0) throw new TypeError('empty');
    } catch {
      return `${flag} must be a list of host:port, like 127.0.0.1:7000,127.0.0.1:7001`;
    }
  }
  if (settings.redisSentinel !== '' && settings.redisMaster === '')
    return '--redis-sentinel needs --redis-master <name> (the master name the sentinels monitor)';
  if (settings.redisMaster !== '' && settings.redisSentinel === '') return '--redis-master goes with --redis-sentinel';
  return undefined;
}

export function createRedisBroker(settings: Settings, history: HistoryLimits): RedisBroker | RedisClusterBroker {
  if (settings.redisCluster !== '') {
    return new RedisClusterBroker({
      nodes: settings.redisCluster.split(',').filter((s) => s.trim() !== ''),
      prefix: settings.redisPrefix,
      history,
      presenceTtlMs: settings.presenceTtl * 1000,
    });
  }
  if (settings.redisSentinel !== '') {
    return new RedisBroker({
      sentinel: { sentinels: addresses(settings.redisSentinel), name: settings.redisMaster },
      prefix: settings.redisPrefix,
      history,
      presenceTtlMs: settings.presenceTtl * 1000,
    });
  }
  const presenceTtlMs = settings.presenceTtl * 1000;
  return new RedisBroker({ url: settings.redis, prefix: settings.redisPrefix, history, presenceTtlMs });
}

/** The banner's broker line (never with credentials). */
export function redisBrokerLine(settings: Settings): string {
  const workers = settings.workers > 1 ? `, ${settings.workers} worker processes` : '';
  const tail = ` (prefix ${settings.redisPrefix}${workers})\n`;
  if (settings.redisCluster !== '') {
    return `  broker     redis cluster, seeds ${addresses(settings.redisCluster)
      .map((a) => `${a.host}:${a.port}`)
      .join(',')}${tail}`;
  }
  if (settings.redisSentinel !== '') {
    return `  broker     redis master "${settings.redisMaster}" via sentinels ${addresses(settings.redisSentinel)
      .map((a) => `${a.host}:${a.port}`)
      .join(',')}${tail}`;
  }
  const url = new URL(settings.redis);
  return `  broker     redis at ${url.hostname}:${url.port || '6379'}${tail}`;
}
