/*
 * presence, part 2: what one join or leave costs on a big channel. One
 * channel of `members` SSE subscribers on `kometa serve --presence-events`,
 * a share of them with `?presence=1`; then, one at a time, ordinary
 * messages, new clients joining, and the same clients leaving. Each step
 * waits until every subscriber that should see it has it, so the server CPU
 * of a phase divided by its steps is the cost of one event, next to the cost
 * of one ordinary message to the same subscribers in the same run.
 */
import { type Socket, connect } from 'node:net';
import { type Bench, MESSAGE_BYTES, log, median, sleep } from '../lib/bench.js';
import { Load } from '../lib/load.js';
import { sampleTree } from '../lib/procs.js';
import { messageData } from '../lib/protocol.js';
import { Publisher } from '../lib/publisher.js';
import { type Running, type SubscriberSpec, presenceSystems, startRedis } from '../lib/systems.js';

const CHANNEL = 'room';
// Members are clients `m<i>`: a second subscription of the same client is the same member, and joins nobody.
const PLAIN: SubscriberSpec = { kind: 'sse', path: '/sub/{ch}?client=m{i}', readyToken: '\r\n\r\n' };
const WATCHING: SubscriberSpec = { ...PLAIN, path: '/sub/{ch}?presence=1&client=m{i}' };

export interface JoinsOptions {
  readonly sizes: number[];
  /** Share of the members that subscribe with ?presence=1. */
  readonly share: number;
  readonly rounds: number;
  /** Messages, joins and leaves per phase. */
  readonly steps: number;
  /** In memory, and/or with a Redis of the run's own (members, events and messages go through it). */
  readonly brokers: readonly ('memory' | 'redis')[];
}

/** The server under test; with Redis, its CPU counts Redis's too. */
interface Server {
  readonly running: Running;
  readonly broker: 'memory' | 'redis';
  cpuSec(): number;
}

/** One phase: server CPU per step in ms, and the median time until every subscriber had a step. */
interface Step {
  cpuMs: number;
  latencyMs: number;
}

interface Loads {
  readonly plain: Load | undefined;
  readonly watching: Watching;
}

/** The ?presence=1 subscribers: several loads, opened a chunk at a time. */
class Watching {
  constructor(readonly loads: Load[]) {}

  get frontier(): number {
    return Math.min(...this.loads.map((l) => l.frontier));
  }

  get eventFrontier(): number {
    return Math.min(...this.loads.map((l) => l.eventFrontier));
  }

  async reset(): Promise<void> {
    for (const load of this.loads) await load.reset();
  }

  async report() {
    const total = { unique: 0, closed: 0, joins: 0, leaves: 0, atEvents: {} as Record<string, number> };
    for (const load of this.loads) {
      const r = await load.report();
      total.unique += r.unique;
      total.closed += r.closed;
      total.joins += r.joins;
      total.leaves += r.leaves;
      for (const [at, n] of Object.entries(r.atEvents)) total.atEvents[at] = (total.atEvents[at] ?? 0) + n;
    }
    return total;
  }

  async close(): Promise<void> {
    for (const load of this.loads) await load.close();
  }
}

/**
 * Watching members subscribed at once: each holds a plain subscription while it subscribes again, and a
 * process may hold 20,000 sockets, so a 10,000-member channel is watched in two chunks.
 */
const CHUNK = 5000;

export async function presenceJoins(bench: Bench, options: JoinsOptions): Promise<unknown[]> {
  const { events } = presenceSystems();
  const rows: unknown[] = [];
  for (const broker of options.brokers) {
    for (const members of options.sizes) {
      await bench.attempt(events, `presence joins ${broker} ${members}`, async () => {
        if (broker === 'memory') {
          const running = await bench.startSystem(events);
          rows.push(await joinsOnce(bench, members, options, { running, broker, cpuSec: () => cpuOf(running.pid) }));
          return;
        }
        const redisPort = bench.port();
        const redis = await startRedis(redisPort, bench.tmp);
        try {
          const running = await bench.startSystem(events, undefined, ['--redis', `redis://127.0.0.1:${redisPort}`]);
          const cpuSec = () => cpuOf(running.pid) + cpuOf(redis.pid);
          rows.push(await joinsOnce(bench, members, options, { running, broker, cpuSec }));
        } finally {
          await redis.stop();
        }
      });
    }
  }
  return rows;
}

const cpuOf = (pid: number) => sampleTree(pid).cpuSec;

async function joinsOnce(bench: Bench, members: number, options: JoinsOptions, server: Server) {
  const { running } = server;
  const publisher = new Publisher('127.0.0.1', running.publish, 1, 1);
  let loads: Partial<Loads> = {};
  try {
    const built = await build(bench, server, members, Math.round(members * options.share));
    loads = built.loads;
    log(`presence joins ${server.broker} ${members}: ${members - built.plainCount} with ?presence=1`);
    const target = { server, publisher, loads: built.loads, seq: { n: 0 } };
    await measureRound(target, 5); // warm-up: JIT, first writes
    await resetAll(target.loads);
    const rounds: Record<string, Step>[] = [];
    for (let r = 0; r < options.rounds; r++) {
      const round = await measureRound(target, options.steps);
      log(`presence joins ${server.broker} ${members} round ${r + 1}: ${JSON.stringify(round)}`);
      rounds.push(round);
    }
    const watchingCount = members - built.plainCount;
    const measured = { members, watchingCount, plainCount: built.plainCount, setup: built.setup, rounds, options };
    return { broker: server.broker, ...(await summarize(target.loads, measured)) };
  } finally {
    publisher.close();
    await loads.watching?.close();
    await loads.plain?.close();
    await running.stop();
  }
}

/**
 * The channel without the ~watching²/2 deliveries of watchers joining one by one (each would see the joins
 * of those after it): every member first joins as a plain subscriber (nobody is watching yet), then the
 * watching ones subscribe again with ?presence=1 as the same client (no join: already a member), then their
 * plain subscriptions close (no leave: the member is still held). No event may reach anyone on the way.
 */
async function build(bench: Bench, server: Server, members: number, watchingCount: number) {
  const { running } = server;
  const open = (spec: SubscriberSpec, count: number, firstIndex: number) =>
    Load.open(bench, running, spec, count, {
      ...{ channel: CHANNEL, perSocketChannel: false, frontier: true, countEvents: true, firstIndex },
      timeoutMs: 120_000,
    });
  const before = server.cpuSec();
  const started = performance.now();
  const plainCount = members - watchingCount;
  const plain = plainCount > 0 ? await open(PLAIN, plainCount, watchingCount) : undefined;
  // Every member joins before anyone watches (a member joining later would be an event to all the watching).
  const firsts = Array.from({ length: Math.ceil(watchingCount / CHUNK) }, (_, c) => c * CHUNK);
  const size = (first: number) => Math.min(CHUNK, watchingCount - first);
  const doubles = [];
  for (const first of firsts) doubles.push(await open(PLAIN, size(first), first));
  const chunks: Load[] = [];
  let failed = (plain?.failed ?? 0) + doubles.reduce((a, d) => a + d.failed, 0);
  for (const [c, first] of firsts.entries()) {
    const watching = await open(WATCHING, size(first), first);
    chunks.push(watching.load);
    await doubles[c]!.load.close();
    failed += watching.failed;
  }
  const watching = new Watching(chunks);
  await sleep(6000); // past the 5 s grace period: a leave the closing caused (it must not) would be counted
  await settle(server);
  if (failed > 0) throw new Error(`${failed} subscribers failed to connect`);
  const seen = await watching.report();
  const setup = {
    ms: Math.round(performance.now() - started),
    serverCpuSec: Math.round((server.cpuSec() - before) * 100) / 100,
    eventsSeen: seen.joins + seen.leaves + (plain === undefined ? 0 : (await plain.load.report()).joins),
  };
  const loads: Loads = { plain: plain?.load, watching };
  return { loads, plainCount, setup };
}

interface Target {
  readonly server: Server;
  readonly publisher: Publisher;
  readonly loads: Loads;
  readonly seq: { n: number };
}

/** Messages, then joins, then leaves, then the connection alone (a client in and out of an empty channel). */
async function measureRound(target: Target, steps: number): Promise<Record<string, Step>> {
  const { loads, publisher, seq } = target;
  const everyone = [loads.watching, ...(loads.plain === undefined ? [] : [loads.plain])];
  const message = await measure(target.server, steps, async () => {
    seq.n++;
    publisher.publish(CHANNEL, messageData(seq.n, MESSAGE_BYTES));
    await until(() => Math.min(...everyone.map((l) => l.frontier)) >= seq.n, 'a message');
  });
  const joiners: Socket[] = [];
  const port = target.server.running.port;
  const join = await measure(target.server, steps, async () => {
    const next = loads.watching.eventFrontier + 1;
    joiners.push(await subscribe(port, CHANNEL));
    await until(() => loads.watching.eventFrontier >= next, 'a join');
  });
  const leave = await measure(target.server, steps, async () => {
    const next = loads.watching.eventFrontier + 1;
    joiners.shift()!.destroy();
    await until(() => loads.watching.eventFrontier >= next, 'a leave');
  });
  const connection = await measure(target.server, steps, async () => {
    (await subscribe(port, 'elsewhere')).destroy();
    await sleep(2);
  });
  return { message, join, leave, connection };
}

/** Server CPU per step (ms) over `steps` steps taken one after the other, and the median step time. */
async function measure(server: Server, steps: number, step: () => Promise<void>): Promise<Step> {
  await sleep(100);
  const before = server.cpuSec();
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const started = performance.now();
    await step();
    times.push(performance.now() - started);
  }
  await sleep(100); // a closed connection's leave is published after the step saw its socket go
  const cpuMs = ((server.cpuSec() - before) * 1000) / steps;
  return { cpuMs: Math.round(cpuMs * 100) / 100, latencyMs: Math.round(median(times) * 100) / 100 };
}

/** A client that subscribes without a client id: it is a member at once, and leaves at once when it goes. */
function subscribe(port: number, channel: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let head = '';
    socket.on('connect', () => {
      socket.write(`GET /sub/${channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      if (head.startsWith('HTTP/1.1 200')) resolve(socket);
      else reject(new Error(`subscribe answered ${head.split('\r\n')[0]}`));
    });
    socket.on('error', reject);
  });
}

async function until(done: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`${what} did not reach every subscriber in ${timeoutMs} ms`);
    await sleep(1);
  }
}

/** Wait until the server is idle (under 5% of a core over half a second): the setup's joins are all delivered. */
async function settle(server: Server): Promise<void> {
  const deadline = performance.now() + 600_000;
  let last = server.cpuSec();
  while (performance.now() < deadline) {
    await sleep(500);
    const now = server.cpuSec();
    if (now - last < 0.025) return;
    last = now;
  }
}

async function resetAll(loads: Loads): Promise<void> {
  await loads.watching.reset();
  await loads.plain?.reset();
}

interface Measured {
  readonly members: number;
  readonly watchingCount: number;
  readonly plainCount: number;
  readonly setup: { ms: number; serverCpuSec: number; eventsSeen: number };
  readonly rounds: Record<string, Step>[];
  readonly options: JoinsOptions;
}

/** Medians over the rounds, the ratios to one ordinary message, and whether every subscriber saw what it should. */
async function summarize(loads: Loads, m: Measured) {
  const med = (name: string, key: keyof Step) => median(m.rounds.map((r) => r[name]![key]));
  const cpu = Object.fromEntries(['message', 'join', 'leave', 'connection'].map((n) => [n, med(n, 'cpuMs')]));
  const latency = Object.fromEntries(['message', 'join', 'leave'].map((n) => [n, med(n, 'latencyMs')]));
  const watching = await loads.watching.report();
  const plain = await loads.plain?.report();
  const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
  const expected = `${m.options.rounds * m.options.steps}/${m.options.rounds * m.options.steps}`;
  return {
    part: 'joins',
    members: m.members,
    watching: m.watchingCount,
    plain: m.plainCount,
    steps: m.options.steps,
    rounds: m.rounds,
    setup: m.setup,
    medianCpuMs: cpu,
    medianLatencyMs: latency,
    joinToMessage: ratio(cpu.join!, cpu.message!),
    leaveToMessage: ratio(cpu.leave!, cpu.message!),
    check: {
      expected,
      watchingByJoinsLeaves: watching.atEvents,
      exactlyOnce: watching.atEvents[expected] === m.watchingCount,
      plainByJoinsLeaves: plain?.atEvents ?? {},
      messagesLost: m.members * m.options.rounds * m.options.steps - watching.unique - (plain?.unique ?? 0),
      closedByServer: watching.closed + (plain?.closed ?? 0),
    },
  };
}
