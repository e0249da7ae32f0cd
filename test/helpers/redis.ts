import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { type Server, type Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EventSource } from 'eventsource';
import { Redis } from 'ioredis';
import { waitFor } from './hub.js';
import { dataDirArgs } from './data-dir.js';

/** A key prefix no other test (or person) uses. */
export function uniquePrefix(what: string): string {
  return `kometa-test:${what}:${randomBytes(4).toString('hex')}:`;
}

/** Delete every key under `prefix` (SCAN, never FLUSHALL: the server is shared). */
export async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export async function freePort(): Promise<number> {
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A redis-server of the test's own, on a spare port, that the test may kill and restart. */
export interface OwnRedis {
  readonly port: number;
  readonly url: string;
  readonly pid: number | undefined;
  /** SIGKILL: no shutdown save, exactly like a crash. */
  kill(): Promise<void>;
  /** Start again on the same port (and the same directory: with persistence, the data comes back). */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export async function startOwnRedis(options: { persistent: boolean }): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'kometa-redis-'));
  let child: ChildProcess | undefined;
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--protected-mode', 'no'];
  args.push(...(options.persistent ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no']));

  const start = async () => {
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let output = '';
    proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor(
      () => /Ready to accept connections/.test(output) || proc.exitCode !== null,
      10_000,
      'redis-server to start',
    );
    if (proc.exitCode !== null) throw new Error(`redis-server exited: ${output}`);
  };
  const kill = async () => {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child?.pid;
    },
    kill,
    start,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A `kometa serve` child process on a port of its own choosing, found from its banner line. */
export interface KometaProcess {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly output: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function startKometa(args: string[]): Promise<KometaProcess> {
  // Without a store of its own, a data directory of its own: the default ./kometa-data belongs to one process.
  const store = args.some((arg) => arg === '--redis' || arg === '--data-dir' || arg === '--memory')
    ? []
    : dataDirArgs('kometa');
  const proc = spawn(process.execPath, [MAIN, 'serve', '--port', '0', ...store, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  proc.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  try {
    await waitFor(
      () => /kometa hub listening on http:\/\/127\.0\.0\.1:\d+/.test(output) || proc.exitCode !== null,
      30_000,
      'kometa to listen',
    );
  } catch (error) {
    proc.kill('SIGKILL');
    throw new Error(`${(error as Error).message}; output: ${output}`, { cause: error });
  }
  if (proc.exitCode !== null) throw new Error(`kometa exited with ${proc.exitCode}: ${output}`);
  const port = Number(/kometa hub listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)![1]);
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: proc.pid!,
    output: () => output,
    kill: async (signal = 'SIGKILL') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      await exited;
    },
  };
}

/**
 * A round-robin TCP load balancer with no stickiness at all: every new
 * connection goes to the next backend that accepts it. What an operator puts
 * in front of several kometa processes.
 */
export interface Balancer {
  readonly url: string;
  backends: number[];
  close(): Promise<void>;
}

export async function startBalancer(backends: number[]): Promise<Balancer> {
  let next = 0;
  const sockets = new Set<Socket>();
  const balancer: Balancer = {
    url: '',
    backends,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => {});
    client.pause();
    const attempt = (tries: number) => {
      if (tries >= balancer.backends.length) {
        client.destroy();
        return;
      }
      const port = balancer.backends[next++ % balancer.backends.length]!;
      const upstream = connect(port, '127.0.0.1');
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        sockets.add(upstream);
        upstream.on('close', () => {
          sockets.delete(upstream);
          client.destroy();
        });
        client.on('close', () => upstream.destroy());
        upstream.on('error', () => client.destroy());
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.once('error', () => {
        if (!connected) attempt(tries + 1);
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  (balancer as { url: string }).url =
    `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  return balancer;
}

export interface Received {
  readonly id: string;
  readonly data: string;
}

/** An SSE subscriber using the `eventsource` package, recording messages, gaps and (re)connects. */
export interface SseCollector {
  readonly received: Received[];
  /** Each gap notice, with `at`: how many messages had arrived before it. */
  readonly gaps: { reason: string; epoch: string; missed?: { from: number; to: number }; at: number }[];
  readonly opens: () => number;
  readonly lastId: () => string;
  close(): void;
}

export function sseCollector(url: string): SseCollector {
  const source = new EventSource(url);
  const received: Received[] = [];
  const gaps: SseCollector['gaps'] = [];
  let opens = 0;
  let lastId = '';
  source.onopen = () => opens++;
  source.onmessage = (event) => {
    lastId = event.lastEventId;
    received.push({ id: event.lastEventId, data: event.data });
  };
  source.addEventListener('kometa-gap', (event) => {
    lastId = event.lastEventId;
    gaps.push({ ...JSON.parse(event.data), at: received.length });
  });
  return { received, gaps, opens: () => opens, lastId: () => lastId, close: () => source.close() };
}

/** The sequence number in a one-channel id `channel~epoch~seq`. */
export function seqOf(id: string): number {
  return Number(id.split('~')[2]);
}

export function epochOf(id: string): string {
  return id.split('~')[1]!;
}
