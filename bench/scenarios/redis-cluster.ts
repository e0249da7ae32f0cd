/*
 * redis-cluster: fan-out through kometa on one Redis versus a 3-master Redis
 * Cluster, in one run, counted per CPU-second.
 *
 * For each setup this starts its own Redis (one redis-server, or a cluster of
 * 3 masters without replicas on spare ports), `nodes` kometa processes on it,
 * `perChannel` chunked-stream subscribers per channel on every kometa node, and
 * publishes `messages` messages spread round-robin over the channels and the
 * nodes, 32 in flight. Reported: deliveries per second of wall time and per
 * CPU-second of kometa and Redis together (user + system time from /proc).
 * Load and servers share the machine: look at the ratios.
 */
import { Agent, request } from 'node:http';
import { startOwnCluster } from '../../test/helpers/redis-cluster.js';
import { startOwnRedis } from '../../test/helpers/redis.js';
import { type Bench, log } from '../lib/bench.js';
import { startKometaServe } from '../lib/kometa-serve.js';
import { commandExists, sampleTree } from '../lib/procs.js';

interface Setup {
  readonly name: string;
  readonly args: string[];
  readonly redisPids: number[];
}

/** The subscribers' deliveries so far, counted from their NDJSON lines. */
class Deliveries {
  count = 0;
  live = 0;
  readonly #closers: (() => void)[] = [];

  subscribe(url: string, channel: string): void {
    let rest = '';
    const req = request(`${url}/sub/${channel}?transport=stream`, { agent: false }, (res) => {
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        const lines = (rest + text).split('\n');
        rest = lines.pop()!;
        for (const line of lines) {
          if (line.startsWith('{"type":"message"')) this.count++;
          else if (line.startsWith('{"type":"live"')) this.live++;
        }
      });
      res.on('error', () => {});
    });
    req.on('error', () => {});
    req.end();
    this.#closers.push(() => req.destroy());
  }

  close(): void {
    for (const close of this.#closers) close();
  }
}

function post(agent: Agent, url: string, channel: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const headers = { 'Content-Type': 'text/plain' };
    const req = request(`${url}/pub/${channel}`, { method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`publish: ${res.statusCode}`))));
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      // A kept-alive socket the server closed as idle just as it was reused: the request never reached the
      // server (Node's documented race), so sending it again on a fresh socket publishes it once.
      if (req.reusedSocket && (error.code === 'ECONNRESET' || error.message === 'socket hang up')) {
        post(agent, url, channel, body).then(resolve, reject);
      } else reject(error);
    });
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

/** user + system CPU time of a process (and its children) so far, in seconds. */
const cpuSeconds = (pid: number) => sampleTree(pid).cpuSec;

async function measure(bench: Bench, setup: Setup) {
  const { nodes: nodeCount, channels: channelCount, perChannel, messages } = bench.config.cluster;
  const channels = Array.from({ length: channelCount }, (_, i) => `b${i}`);
  const nodes = await Promise.all(Array.from({ length: nodeCount }, () => startKometaServe(setup.args)));
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const deliveries = new Deliveries();
  try {
    for (const node of nodes) {
      for (const c of channels) for (let i = 0; i < perChannel; i++) deliveries.subscribe(node.url, c);
    }
    const subscribers = nodes.length * channels.length * perChannel;
    await until(() => deliveries.live >= subscribers, 60_000, 'subscribers live');
    for (const [i, c] of channels.entries()) await post(agent, nodes[i % nodes.length]!.url, c, 'warm-up');
    await until(() => deliveries.count >= subscribers, 60_000, 'warm-up');
    deliveries.count = 0;
    const pids = [...nodes.map((n) => n.child.pid!), ...setup.redisPids];
    const before = pids.map(cpuSeconds);
    const start = performance.now();
    let next = 0;
    const body = 'x'.repeat(100);
    const sender = async () => {
      while (next < messages) {
        const n = next++;
        await post(agent, nodes[n % nodes.length]!.url, channels[n % channels.length]!, body);
      }
    };
    await Promise.all(Array.from({ length: 32 }, sender));
    const expected = messages * nodeCount * perChannel;
    await until(() => deliveries.count >= expected, 120_000, 'deliveries');
    const seconds = (performance.now() - start) / 1000;
    const spent = pids.map((pid, i) => cpuSeconds(pid) - before[i]!);
    const kometaCpu = spent.slice(0, nodes.length).reduce((a, b) => a + b, 0);
    const redisCpu = spent.slice(nodes.length).reduce((a, b) => a + b, 0);
    const perCpuSecond = Math.round(expected / (kometaCpu + redisCpu));
    return { deliveries: expected, perSecond: Math.round(expected / seconds), perCpuSecond, kometaCpu, redisCpu };
  } finally {
    deliveries.close();
    agent.destroy();
    for (const node of nodes) node.child.kill('SIGKILL');
  }
}

export async function redisCluster(bench: Bench): Promise<void> {
  if (!commandExists('redis-server')) {
    log('redis-cluster: redis-server not installed — skipped');
    bench.skipped.push({ system: 'kometa', scenario: 'redis-cluster', reason: 'redis-server not installed' });
    return;
  }
  const { nodes, channels, perChannel, messages } = bench.config.cluster;
  log(
    `redis-cluster: ${nodes} kometa nodes × ${channels} channels × ${perChannel} subscribers per channel per node, ` +
      `${messages} messages`,
  );
  const one = await startOwnRedis({ persistent: false });
  const cluster = await startOwnCluster({ masters: 3, replicas: 0 });
  const setups: Setup[] = [
    { name: 'one Redis', args: ['--redis', one.url], redisPids: [one.pid!] },
    {
      name: 'Cluster, 3 masters',
      args: ['--redis-cluster', cluster.seeds],
      redisPids: cluster.nodes.map((n) => n.pid!),
    },
  ];
  try {
    for (const setup of setups) {
      let r: Awaited<ReturnType<typeof measure>>;
      try {
        r = await measure(bench, setup);
      } catch (error) {
        const reason = `failed: ${error instanceof Error ? error.message : String(error)}`;
        log(`redis-cluster ${setup.name}: ${reason}`);
        bench.skipped.push({ system: `kometa on ${setup.name}`, scenario: 'redis-cluster', reason });
        continue;
      }
      const row = { setup: setup.name, nodes, channels, perChannel, messages, ...r };
      bench.results['redis-cluster']!.push(row);
      log(
        `redis-cluster ${setup.name}: ${r.perSecond} deliveries/s, ${r.perCpuSecond} per CPU-second ` +
          `(kometa ${r.kometaCpu.toFixed(2)} s, Redis ${r.redisCpu.toFixed(2)} s)`,
      );
    }
  } finally {
    await one.stop();
    await cluster.stop();
  }
}
