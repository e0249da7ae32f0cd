/*
 * Fan-out through kometa on one Redis versus a 3-master Redis Cluster, in one
 * run, counted per CPU-second.
 *
 *   node dist/bench/redis-cluster-fanout.js [--channels 100] [--per-channel 4] [--messages 5000] [--nodes 2]
 *
 * For each setup this process starts its own Redis (one redis-server, or a
 * cluster of 3 masters without replicas on spare ports), `nodes` kometa
 * processes on it, `per-channel` chunked-stream subscribers per channel on
 * every kometa node, and publishes `messages` messages spread round-robin over
 * the channels and the nodes, 32 in flight. Reported: deliveries per second
 * of wall time and per CPU-second of kometa and Redis together (user + system
 * time from /proc, so Linux only). Load and servers share the machine: look
 * at the ratios.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startOwnCluster } from '../test/helpers/redis-cluster.js';
import { startOwnRedis } from '../test/helpers/redis.js';

const { values } = parseArgs({
  options: {
    channels: { type: 'string', default: '100' },
    'per-channel': { type: 'string', default: '4' },
    messages: { type: 'string', default: '5000' },
    nodes: { type: 'string', default: '2' },
  },
});
const CHANNELS = Array.from({ length: Number(values.channels) }, (_, i) => `b${i}`);
const PER_CHANNEL = Number(values['per-channel']);
const MESSAGES = Number(values.messages);
const NODES = Number(values.nodes);
const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const TICKS = 100; // USER_HZ on Linux

/** user + system CPU time of a process so far, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function startKometa(args: string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(
    process.execPath,
    [MAIN, 'serve', '--port', '0', '--publish-rate', '0', '--max-queue-bytes', String(64 << 20), ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /kometa hub listening on (http:\/\/[^\s]+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`kometa exited with ${code}: ${out}`)));
  });
  child.stdout!.resume();
  return { url, child };
}

let delivered = 0;
function subscribe(url: string, channel: string, live: () => void): () => void {
  let rest = '';
  const req = request(`${url}/sub/${channel}?transport=stream`, { agent: false }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (text: string) => {
      const lines = (rest + text).split('\n');
      rest = lines.pop()!;
      for (const line of lines) {
        if (line.startsWith('{"type":"message"')) delivered++;
        else if (line.startsWith('{"type":"live"')) live();
      }
    });
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end();
  return () => req.destroy();
}

const agent = new Agent({ keepAlive: true, maxSockets: 32 });
function post(url: string, channel: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/pub/${channel}`,
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
    await new Promise((r) => setTimeout(r, 2));
  }
}

interface Setup {
  readonly name: string;
  readonly args: string[];
  readonly redisPids: number[];
  stop(): Promise<void>;
}

async function measure(
  setup: Setup,
): Promise<{ perSecond: number; perCpuSecond: number; kometaCpu: number; redisCpu: number }> {
  const nodes = await Promise.all(Array.from({ length: NODES }, () => startKometa(setup.args)));
  const closers: (() => void)[] = [];
  try {
    let live = 0;
    for (const node of nodes)
      for (const c of CHANNELS)
        for (let i = 0; i < PER_CHANNEL; i++) closers.push(subscribe(node.url, c, () => live++));
    const subscribers = nodes.length * CHANNELS.length * PER_CHANNEL;
    await until(() => live >= subscribers, 60_000, 'subscribers live');
    for (const [i, c] of CHANNELS.entries()) await post(nodes[i % nodes.length]!.url, c, 'warm-up');
    await until(() => delivered >= subscribers, 60_000, 'warm-up');
    delivered = 0;
    const pids = [...nodes.map((n) => n.child.pid!), ...setup.redisPids];
    const before = pids.map(cpuSeconds);
    const start = performance.now();
    let next = 0;
    const body = 'x'.repeat(100);
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < MESSAGES) {
          const n = next++;
          await post(nodes[n % nodes.length]!.url, CHANNELS[n % CHANNELS.length]!, body);
        }
      }),
    );
    const expected = MESSAGES * NODES * PER_CHANNEL;
    await until(() => delivered >= expected, 120_000, 'deliveries');
    const seconds = (performance.now() - start) / 1000;
    const spent = pids.map((pid, i) => cpuSeconds(pid) - before[i]!);
    const kometaCpu = spent.slice(0, nodes.length).reduce((a, b) => a + b, 0);
    const redisCpu = spent.slice(nodes.length).reduce((a, b) => a + b, 0);
    return { perSecond: expected / seconds, perCpuSecond: expected / (kometaCpu + redisCpu), kometaCpu, redisCpu };
  } finally {
    for (const close of closers) close();
    for (const node of nodes) node.child.kill('SIGKILL');
    delivered = 0;
  }
}

async function main(): Promise<void> {
  process.stdout.write(
    `fan-out: ${NODES} kometa nodes × ${CHANNELS.length} channels × ${PER_CHANNEL} subscribers per channel per node, ${MESSAGES} messages\n\n`,
  );
  process.stdout.write(
    '| Redis | deliveries/s | deliveries per CPU-second | kometa CPU s | Redis CPU s |\n|---|---:|---:|---:|---:|\n',
  );
  const one = await startOwnRedis({ persistent: false });
  const cluster = await startOwnCluster({ masters: 3, replicas: 0 });
  const setups: Setup[] = [
    { name: 'one Redis', args: ['--redis', one.url], redisPids: [one.pid!], stop: () => one.stop() },
    {
      name: 'Cluster, 3 masters',
      args: ['--redis-cluster', cluster.seeds],
      redisPids: cluster.nodes.map((n) => n.pid!),
      stop: () => cluster.stop(),
    },
  ];
  try {
    for (const setup of setups) {
      const r = await measure(setup);
      process.stdout.write(
        `| ${setup.name} | ${Math.round(r.perSecond)} | ${Math.round(r.perCpuSecond)} | ${r.kometaCpu.toFixed(2)} | ${r.redisCpu.toFixed(2)} |\n`,
      );
    }
  } finally {
    agent.destroy();
    for (const setup of setups) await setup.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
