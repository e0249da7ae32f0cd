/*
 * How should a kometa node hear about messages published on other nodes:
 * Redis pub/sub, or a blocking XREAD on the channels' streams? Both measured
 * here on a redis-server of the bench's own (spare port, no persistence), with
 * 1, 100 and 1,000 watched channels, the publish side doing what the broker
 * does (XADD, plus PUBLISH for pub/sub, in one script).
 *
 *   node dist/bench/redis-pubsub-vs-xread.js [--messages 20000] [--samples 500]
 *
 * - latency: one publish at a time on a random watched channel, time until
 *   the receiving connection has it; median and p99.
 * - throughput: `messages` publishes spread over the channels, 500 in flight;
 *   messages per second until the receiver has them all.
 * - Redis CPU: used_cpu_user + used_cpu_sys (INFO cpu) over the throughput run,
 *   in microseconds per message.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';

const { values } = parseArgs({
  options: { messages: { type: 'string', default: '20000' }, samples: { type: 'string', default: '500' } },
});
const MESSAGES = Number(values.messages);
const SAMPLES = Number(values.samples);

const XADD_PUBLISH = `
redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[1])`;
const XADD_ONLY = `redis.call('XADD', KEYS[1], '*', 'd', ARGV[1])`;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

async function startRedis(): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out}`)));
  });
  child.stdout!.resume();
  return { port, child };
}

async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)![1]);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)![1]);
  return user + sys;
}

interface Receiver {
  received: number;
  lastAt: number;
  stop(): Promise<void>;
}

async function pubsubReceiver(port: number, channels: string[]): Promise<Receiver> {
  const sub = new Redis(port, '127.0.0.1');
  const receiver: Receiver = { received: 0, lastAt: 0, stop: async () => void sub.disconnect() };
  sub.on('message', () => {
    receiver.received++;
    receiver.lastAt = performance.now();
  });
  for (let i = 0; i < channels.length; i += 500) await sub.subscribe(...channels.slice(i, i + 500));
  return receiver;
}

async function xreadReceiver(port: number, streams: string[]): Promise<Receiver> {
  const conn = new Redis(port, '127.0.0.1');
  const ids = streams.map(() => '0-0');
  const index = new Map(streams.map((s, i) => [s, i]));
  let running = true;
  const receiver: Receiver = {
    received: 0,
    lastAt: 0,
    stop: async () => {
      running = false;
      conn.disconnect();
      await loop.catch(() => {});
    },
  };
  const loop = (async () => {
    while (running) {
      const reply = (await conn.xread('COUNT', 1000, 'BLOCK', 1000, 'STREAMS', ...streams, ...ids)) as
        [string, [string, string[]][]][] | null;
      if (reply === null) continue;
      const now = performance.now();
      for (const [stream, entries] of reply) {
        receiver.received += entries.length;
        ids[index.get(stream)!] = entries[entries.length - 1]![0];
      }
      receiver.lastAt = now;
    }
  })();
  return receiver;
}

async function until(predicate: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setImmediate(r));
  }
}

function pct(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

async function run(port: number, mode: 'pubsub' | 'xread', channelCount: number) {
  const admin = new Redis(port, '127.0.0.1');
  await admin.flushall(); // our own server: nothing else lives here
  const pub = new Redis(port, '127.0.0.1');
  const streams = Array.from({ length: channelCount }, (_, i) => `s:{c${i}}`);
  const channels = Array.from({ length: channelCount }, (_, i) => `p:{c${i}}`);
  for (const s of streams) await pub.xadd(s, '*', 'd', 'init');
  const receiver = mode === 'pubsub' ? await pubsubReceiver(port, channels) : await xreadReceiver(port, streams);
  if (mode === 'xread') await until(() => receiver.received >= channelCount, 10_000);
  const script = mode === 'pubsub' ? XADD_PUBLISH : XADD_ONLY;
  const send = (i: number, data: string) =>
    pub.eval(script, 2, streams[i % channelCount]!, channels[i % channelCount]!, data);

  // Latency: one at a time.
  const latencies: number[] = [];
  for (let n = 0; n < SAMPLES; n++) {
    const before = receiver.received;
    const start = performance.now();
    await send(Math.floor(Math.random() * channelCount), 'x'.repeat(100));
    await until(() => receiver.received > before, 10_000);
    latencies.push(receiver.lastAt - start);
  }

  // Throughput: many in flight.
  const base = receiver.received;
  const cpuBefore = await redisCpu(admin);
  const start = performance.now();
  for (let n = 0; n < MESSAGES; n += 500) {
    const batch: Promise<unknown>[] = [];
    for (let i = n; i < Math.min(MESSAGES, n + 500); i++) batch.push(send(i, 'x'.repeat(100)));
    await Promise.all(batch);
  }
  await until(() => receiver.received - base >= MESSAGES, 60_000);
  const seconds = (performance.now() - start) / 1000;
  const cpu = (await redisCpu(admin)) - cpuBefore;
  await receiver.stop();
  pub.disconnect();
  admin.disconnect();
  return {
    median: pct(latencies, 0.5),
    p99: pct(latencies, 0.99),
    perSecond: MESSAGES / seconds,
    cpuUsPerMessage: (cpu * 1e6) / MESSAGES,
  };
}

async function main(): Promise<void> {
  const redis = await startRedis();
  try {
    process.stdout.write(
      `pub/sub vs blocking XREAD: ${SAMPLES} latency samples, ${MESSAGES} messages for throughput\n\n`,
    );
    process.stdout.write(
      '| channels | mode | latency median | latency p99 | messages/s | Redis CPU µs/message ' +
        '|\n|---:|---|---:|---:|---:|---:|\n',
    );
    for (const channels of [1, 100, 1000, 10_000]) {
      for (const mode of ['pubsub', 'xread'] as const) {
        const r = await run(redis.port, mode, channels);
        process.stdout.write(
          `| ${channels} | ${mode} | ${r.median.toFixed(3)} ms | ${r.p99.toFixed(3)} ms | ` +
            `${Math.round(r.perSecond)} | ${r.cpuUsPerMessage.toFixed(1)} |\n`,
        );
      }
    }
  } finally {
    redis.child.kill('SIGKILL');
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
