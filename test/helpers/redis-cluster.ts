import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { waitFor } from './hub.js';
import { freePort } from './redis.js';

const run = promisify(execFile);

/** One redis-server process of a test's own: killed by its PID, never by name. */
export interface RedisProcess {
  readonly port: number;
  readonly pid: number | undefined;
  readonly alive: boolean;
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: frozen, its sockets open, answering nothing. */
  pause(): void;
  resume(): void;
  /** What it printed (its log), for a failure message. */
  output(): string;
}

async function spawnRedis(
  args: string[],
  ready: RegExp,
  what: string,
): Promise<{ proc: ChildProcess; output: () => string }> {
  const proc = spawn(args[0]!, args.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitFor(() => ready.test(output) || proc.exitCode !== null, 10_000, `${what} to start`).catch(
    (error: Error) => {
      proc.kill('SIGKILL');
      throw new Error(`${error.message}: ${output}`);
    },
  );
  if (proc.exitCode !== null) throw new Error(`${what} exited: ${output}`);
  return { proc, output: () => output };
}

function processHandle(port: number, proc: ChildProcess, output: () => string): RedisProcess {
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  return {
    port,
    pid: proc.pid,
    get alive() {
      return proc.exitCode === null && proc.signalCode === null;
    },
    kill: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGKILL');
      await exited;
    },
    pause: () => proc.kill('SIGSTOP'),
    resume: () => proc.kill('SIGCONT'),
    output,
  };
}

/** Ask one node something; a node that is down answers undefined. */
export async function ask<T>(port: number, fn: (redis: Redis) => Promise<T>): Promise<T | undefined> {
  const redis = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return await fn(redis);
  } catch {
    return undefined;
  } finally {
    redis.disconnect();
  }
}

/** A Redis Cluster of the test's own: `masters` masters, each with `replicas` replicas, on spare ports. */
export interface OwnCluster {
  readonly nodes: readonly RedisProcess[];
  /** `host:port,host:port,…` of every node, for --redis-cluster. */
  readonly seeds: string;
  /** The port of the master that owns `slot` now, asked of a live node. */
  masterOf(slot: number): Promise<number>;
  /** Who serves which slots now: `[from, to, master port]`, asked of a live node. */
  slotMap(): Promise<[number, number, number][]>;
  /** The port of a replica of the master on `port`. */
  replicaOf(port: number): Promise<number>;
  /** Resolves once every slot is served and every master has its replicas in sync. */
  healthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startOwnCluster(
  options: { masters?: number; replicas?: number; nodeTimeoutMs?: number } = {},
): Promise<OwnCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 1;
  const count = masters * (1 + replicas);
  const dir = mkdtempSync(join(tmpdir(), 'kometa-cluster-'));
  const nodes: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < count; i++) {
      // The cluster bus port is given explicitly: port + 10000 may be past 65535 for a spare port.
      const port = await freePort();
      const busPort = await freePort();
      const { proc, output } = await spawnRedis(
        [
          'redis-server',
          '--port',
          String(port),
          '--cluster-port',
          String(busPort),
          '--bind',
          '127.0.0.1',
          '--protected-mode',
          'no',
          '--dir',
          dir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 1000),
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        /Ready to accept connections/,
        'redis-server (cluster node)',
      );
      nodes.push(processHandle(port, proc, output));
    }
    await run(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ],
      { timeout: 30_000 },
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const live = () => nodes.filter((n) => n.alive);
  const cluster: OwnCluster = {
    nodes,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    async slotMap() {
      for (const node of live()) {
        const slots = (await ask(node.port, (r) => r.cluster('SLOTS'))) as
          [number, number, [string, number]][] | undefined;
        if (slots !== undefined)
          return slots.map(([from, to, master]) => [from, to, master[1]] as [number, number, number]);
      }
      throw new Error('no live node answers CLUSTER SLOTS');
    },
    async masterOf(slot) {
      const range = (await cluster.slotMap()).find(([from, to]) => slot >= from && slot <= to);
      if (range === undefined) throw new Error(`no master serves slot ${slot}`);
      return range[2];
    },
    async replicaOf(port) {
      for (const node of live()) {
        const info = await ask(node.port, (r) => r.info('replication'));
        if (info !== undefined && /role:slave/.test(info) && new RegExp(`master_port:${port}\\b`).test(info))
          return node.port;
      }
      throw new Error(`no replica of ${port}`);
    },
    async healthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        let ok = true;
        let syncedReplicas = 0;
        for (const node of live()) {
          const info = await ask(
            node.port,
            async (r) => [await r.cluster('INFO'), await r.info('replication')] as const,
          );
          if (info === undefined || !/cluster_state:ok/.test(String(info[0]))) ok = false;
          else if (/role:slave/.test(info[1]) && /master_link_status:up/.test(info[1])) syncedReplicas++;
        }
        if (ok && syncedReplicas >= masters * replicas - (nodes.length - live().length)) return;
        if (Date.now() > deadline) throw new Error('the Redis Cluster did not become healthy');
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop,
  };
  try {
    await cluster.healthy();
  } catch (error) {
    await stop();
    throw error;
  }
  return cluster;
}

/** A master with replicas watched by three sentinels, all of the test's own. */
export interface OwnSentinels {
  readonly master: RedisProcess;
  readonly replicas: readonly RedisProcess[];
  readonly sentinels: readonly RedisProcess[];
  readonly name: string;
  /** `host:port,…` of the sentinels, for --redis-sentinel. */
  readonly seeds: string;
  /** The port the sentinels name as master now. */
  currentMaster(): Promise<number | undefined>;
  /** Who each sentinel names as master, each server's role, and the end of the sentinels' logs. */
  describe(): Promise<string>;
  stop(): Promise<void>;
}

export async function startOwnSentinels(
  options: { replicas?: number; downAfterMs?: number } = {},
): Promise<OwnSentinels> {
  const dir = mkdtempSync(join(tmpdir(), 'kometa-sentinel-'));
  const all: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all(all.map((n) => n.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  const name = 'kometa-test';
  const server = async (extra: string[]) => {
    const port = await freePort();
    const { proc, output } = await spawnRedis(
      [
        'redis-server',
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--protected-mode',
        'no',
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        'no',
        ...extra,
      ],
      /Ready to accept connections/,
      'redis-server',
    );
    const handle = processHandle(port, proc, output);
    all.push(handle);
    return handle;
  };
  try {
    const master = await server([]);
    const replicas: RedisProcess[] = [];
    for (let i = 0; i < (options.replicas ?? 1); i++)
      replicas.push(await server(['--replicaof', '127.0.0.1', String(master.port)]));
    const sentinels: RedisProcess[] = [];
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          'protected-mode no',
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${master.port} 2`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} 10000`,
          `sentinel parallel-syncs ${name} 1`,
          '',
        ].join('\n'),
      );
      const { proc, output } = await spawnRedis(
        ['redis-server', conf, '--sentinel'],
        /Sentinel ID is|monitor master/i,
        'redis-sentinel',
      );
      const handle = processHandle(port, proc, output);
      all.push(handle);
      sentinels.push(handle);
    }
    const currentMaster = async () => {
      for (const s of sentinels.filter((x) => x.alive)) {
        const addr = (await ask(s.port, (r) => r.call('SENTINEL', 'get-master-addr-by-name', name))) as
          [string, string] | null | undefined;
        if (addr) return Number(addr[1]);
      }
      return undefined;
    };
    // Sentinels find the replicas and each other through the master; wait until they have.
    const deadline = Date.now() + 20_000;
    for (;;) {
      let known = 0;
      for (const s of sentinels) {
        const info = (await ask(s.port, (r) => r.call('SENTINEL', 'master', name))) as string[] | undefined;
        if (info === undefined) continue;
        const field = (k: string) => Number(info[info.indexOf(k) + 1]);
        if (field('num-slaves') >= replicas.length && field('num-other-sentinels') >= 2) known++;
      }
      const synced = await Promise.all(replicas.map((r) => ask(r.port, (c) => c.info('replication'))));
      if (known === 3 && synced.every((s) => s !== undefined && /master_link_status:up/.test(s))) break;
      if (Date.now() > deadline) throw new Error('the sentinels did not find the replicas and each other');
      await new Promise((r) => setTimeout(r, 200));
    }
    return {
      master,
      replicas,
      sentinels,
      name,
      seeds: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      currentMaster,
      describe: () => describeSentinels(name, [master, ...replicas], sentinels),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function describeSentinels(
  name: string,
  servers: readonly RedisProcess[],
  sentinels: readonly RedisProcess[],
): Promise<string> {
  const lines: string[] = [];
  for (const s of sentinels) {
    const addr = await ask(s.port, (r) => r.call('SENTINEL', 'get-master-addr-by-name', name));
    lines.push(`sentinel ${s.port} names master ${JSON.stringify(addr)}`);
  }
  for (const server of servers) {
    const info = server.alive ? await ask(server.port, (r) => r.info('replication')) : undefined;
    const role = /role:(\w+)/.exec(info ?? '')?.[1] ?? (server.alive ? 'no answer' : 'dead');
    const link = /master_link_status:(\w+)/.exec(info ?? '')?.[1];
    lines.push(`redis ${server.port}: ${role}${link === undefined ? '' : ` (link to its master ${link})`}`);
  }
  for (const s of sentinels) lines.push(`sentinel ${s.port} log ends:\n${s.output().slice(-2500)}`);
  return lines.join('\n');
}
