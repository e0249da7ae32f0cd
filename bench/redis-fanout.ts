/*
 * Fan-out through kometa on the in-memory broker versus the Redis broker with
 * one and two worker processes, in one run.
 *
 *   node dist/bench/redis-fanout.js [--subscribers 200] [--messages 1000] [--repeat 3]
 *                                   [--samples 200] [--redis redis://127.0.0.1:6379]
 *
 * Each configuration is a `kometa serve` child process (the server); this
 * process is the load: it holds the subscribers (chunked ndjson stream, raw
 * node:http) and publishes over keep-alive HTTP.
 *
 * - throughput: `messages` publishes, 32 in flight, to one channel that every
 *   subscriber follows; deliveries per second = subscribers × messages / time
 *   from the first publish to the last delivery. Median of `repeat` runs.
 * - latency: `samples` publishes one at a time (the next only after every
 *   subscriber has the previous), publish-to-deliver time per subscriber per
 *   message; median and p99 of all of them.
 *
 * Load and server share the machine, so absolute numbers are the machine's;
 * the ratios between configurations are the point.
 */
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { type KometaServe as Server, startKometaServe } from './lib/kometa-serve.js';

const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '200' },
    messages: { type: 'string', default: '1000' },
    repeat: { type: 'string', default: '3' },
    samples: { type: 'string', default: '200' },
    redis: { type: 'string', default: process.env.KOMETA_REDIS ?? 'redis://127.0.0.1:6379' },
  },
});
const SUBSCRIBERS = Number(values.subscribers);
const MESSAGES = Number(values.messages);
const REPEAT = Number(values.repeat);
const SAMPLES = Number(values.samples);
const REDIS = values.redis!;
const PAD = 'x'.repeat(60);

interface Config {
  readonly name: string;
  readonly args: string[];
}

async function stopServer(server: Server): Promise<void> {
  if (server.child.exitCode !== null) return;
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGKILL');
  await exited;
}

/** One subscriber on the chunked stream: counts messages, and records latency when asked to. */
class Subscriber {
  count = 0;
  live = false;
  recordLatency = false;
  readonly latencies: number[] = [];
  #rest = '';
  #req: ReturnType<typeof request> | undefined;

  open(url: string): void {
    this.#req = request(`${url}/sub/bench?transport=stream`, { agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (text: string) => this.#onData(text));
      res.on('error', () => {});
    });
    this.#req.on('error', () => {});
    this.#req.end();
  }

  #onData(text: string): void {
    const lines = (this.#rest + text).split('\n');
    this.#rest = lines.pop()!;
    for (const line of lines) {
      if (line.startsWith('{"type":"message"')) {
        this.count++;
        if (this.recordLatency) {
          const now = performance.now();
          const data = JSON.parse(line).data as string;
          this.latencies.push(now - Number(data.slice(0, data.indexOf(' '))));
        }
      } else if (line.startsWith('{"type":"live"')) {
        this.live = true;
      }
    }
  }

  close(): void {
    this.#req?.destroy();
  }
}

const agent = new Agent({ keepAlive: true, maxSockets: 32 });

function post(url: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/pub/bench`,
      { method: 'POST', agent, headers: { 'Content-Type': 'text/plain' } },
      (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`publish: ${res.statusCode}`))));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function until(predicate: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN;
}

interface Result {
  readonly name: string;
  readonly throughput: number[];
  readonly latencyMedian: number;
  readonly latencyP99: number;
}

async function measure(config: Config): Promise<Result> {
  const server = await startKometaServe(config.args);
  const subs = Array.from({ length: SUBSCRIBERS }, () => new Subscriber());
  try {
    for (const sub of subs) sub.open(server.url);
    await until(() => subs.every((s) => s.live), 30_000, 'subscribers live');
    // Warm up (JIT, connections, Redis scripts).
    for (let i = 0; i < 50; i++) await post(server.url, `0 warm ${PAD}`);
    await until(() => subs.every((s) => s.count >= 50), 30_000, 'warm-up');

    const throughput: number[] = [];
    for (let run = 0; run < REPEAT; run++) {
      const base = subs.map((s) => s.count);
      const start = performance.now();
      let next = 0;
      const worker = async () => {
        while (next < MESSAGES) {
          next++;
          await post(server.url, `0 ${next} ${PAD}`);
        }
      };
      await Promise.all(Array.from({ length: 32 }, worker));
      await until(() => subs.every((s, i) => s.count - base[i]! >= MESSAGES), 120_000, 'throughput deliveries');
      throughput.push((SUBSCRIBERS * MESSAGES) / ((performance.now() - start) / 1000));
    }

    for (const sub of subs) sub.recordLatency = true;
    for (let i = 0; i < SAMPLES; i++) {
      const base = subs.map((s) => s.count);
      await post(server.url, `${performance.now()} ${PAD}`);
      await until(() => subs.every((s, j) => s.count > base[j]!), 30_000, 'latency sample');
    }
    const latencies = subs.flatMap((s) => s.latencies);
    return { name: config.name, throughput, latencyMedian: median(latencies), latencyP99: percentile(latencies, 0.99) };
  } finally {
    for (const sub of subs) sub.close();
    await stopServer(server);
  }
}

async function main(): Promise<void> {
  const prefix = `kometa-bench:${randomBytes(4).toString('hex')}:`;
  const configs: Config[] = [
    { name: 'memory, 1 process', args: [] },
    { name: 'redis, 1 worker', args: ['--redis', REDIS, '--redis-prefix', `${prefix}1:`] },
    { name: 'redis, 2 workers', args: ['--redis', REDIS, '--redis-prefix', `${prefix}2:`, '--workers', '2'] },
  ];
  process.stdout.write(
    `fan-out: ${SUBSCRIBERS} subscribers on one channel, ${MESSAGES} messages × ${REPEAT} runs, ${SAMPLES} latency ` +
      `samples\n`,
  );
  const results: Result[] = [];
  try {
    for (const config of configs) {
      const result = await measure(config);
      results.push(result);
      process.stdout.write(
        `  ${config.name.padEnd(18)} ${Math.round(median(result.throughput)).toString().padStart(9)} deliveries/s ` +
          `(runs ${result.throughput.map((x) => Math.round(x)).join(', ')})  latency median ` +
          `${result.latencyMedian.toFixed(2)} ms, p99 ${result.latencyP99.toFixed(2)} ms\n`,
      );
    }
  } finally {
    const redis = new Redis(REDIS);
    let cursor = '0';
    do {
      const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
      cursor = nextCursor;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
    redis.disconnect();
    agent.destroy();
  }
  const memory = results[0]!;
  process.stdout.write(
    '\n| configuration | deliveries/s (median) | vs memory | latency median | latency p99 ' +
      '|\n|---|---:|---:|---:|---:|\n',
  );
  for (const r of results) {
    process.stdout.write(
      `| ${r.name} | ${Math.round(median(r.throughput))} | ` +
        `${(median(r.throughput) / median(memory.throughput)).toFixed(2)}× | ${r.latencyMedian.toFixed(2)} ms | ` +
        `${r.latencyP99.toFixed(2)} ms |\n`,
    );
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
