/*
 * kometa's benchmark: the hub against the Node floor and the peers, in one run.
 *
 *   npm run bench -- [all|idle|fanout|channels|storm|workers|profile|profile-channels] [--systems a,b] [--quick]
 *                    [--repeat 3] [--kometa-before <dir>] [--out name]
 *                    [--workers 5] [--subscribers 95000]   (the workers scenario)
 *
 * This process (pinned to core 1) starts each server on core 0, forks load
 * generators (bench/lib/loader.ts, core 1) that hold the subscribers on raw
 * sockets from 127.0.1.x source addresses, and publishes over raw keep-alive
 * HTTP. Server CPU and memory are read from /proc (the whole process tree);
 * the load's own CPU is reported beside them so that a saturated client is
 * visible. Results: bench/results/<name>.json and .md. docs/benchmarks.md
 * explains the method and the findings.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Histogram } from './lib/histogram.js';
import { childPids, commandExists, forkLoader, hasTaskset, killAllStarted, memAvailableKiB, pinSelf, sampleProcess, sampleTree } from './lib/procs.js';
import type { ChildMessage, ConnectOrder, LoadReport } from './lib/protocol.js';
import { messageData } from './lib/protocol.js';
import { Publisher } from './lib/publisher.js';
import { type Running, type SubscriberSpec, type System, allSystems, redisVersion, startRedis } from './lib/systems.js';
import { summarizeProfile } from './lib/profile.js';
import { renderMarkdown } from './lib/report.js';

const LOADER = fileURLToPath(new URL('./lib/loader.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));
const SCENARIOS = ['idle', 'fanout', 'channels', 'storm', 'workers', 'profile', 'profile-channels'] as const;
type Scenario = (typeof SCENARIOS)[number];
const PER_LOADER = 10_000;
const MESSAGE_BYTES = 100;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    systems: { type: 'string' },
    quick: { type: 'boolean', default: false },
    repeat: { type: 'string' },
    'kometa-before': { type: 'string' },
    out: { type: 'string' },
    workers: { type: 'string' },
    subscribers: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\n?/, '').replace(/^ \* ?/gm, '') + '\n');
  process.exit(0);
}
const quick = values.quick === true;
const scenarioArg = positionals[0] ?? 'all';
const scenarios: Scenario[] =
  scenarioArg === 'all' ? ['idle', 'fanout', 'channels', 'storm', 'workers'] : scenarioArg.split(',').map((s) => {
    if (!(SCENARIOS as readonly string[]).includes(s)) {
      process.stderr.write(`unknown scenario ${s}; one of all, ${SCENARIOS.join(', ')}\n`);
      process.exit(2);
    }
    return s as Scenario;
  });
const repeat = Number(values.repeat ?? (quick ? 1 : 3));
/** The many-channels scenario runs once per system unless --repeat asks for more rounds. */
const channelRounds = values.repeat === undefined ? 1 : repeat;
/** The workers scenario: kometa serve --redis --workers N, idle SSE subscribers spread over channels. */
const workersConfig = {
  workers: Number(values.workers ?? (quick ? 2 : 5)),
  subscribers: Number(values.subscribers ?? (quick ? 4000 : 95_000)),
  channels: quick ? 100 : 1000,
};

const config = quick
  ? { idle: [1000], fanout: [500, 2000], channels: 2000, storm: 2000, maxSeconds: 3, fixedSeconds: 2, fixed: { 500: [100], 2000: [20, 50] } as Record<number, number[]>, stormMessages: 20, profileSubs: 2000 }
  : { idle: [5000, 19000], fanout: [1000, 10000], channels: 10000, storm: 10000, maxSeconds: 5, fixedSeconds: 4, fixed: { 1000: [100, 300], 10000: [2, 5, 10, 20, 30, 40] } as Record<number, number[]>, stormMessages: 50, profileSubs: 10000 };

let systems = allSystems(values['kometa-before']);
if (values.systems !== undefined) {
  const wanted = values.systems.split(',');
  for (const name of wanted) if (!systems.some((s) => s.name === name)) {
    process.stderr.write(`unknown system ${name}; one of ${systems.map((s) => s.name).join(', ')}\n`);
    process.exit(2);
  }
  systems = systems.filter((s) => wanted.includes(s.name));
}

// ---------------------------------------------------------------- plumbing

const tmp = mkdtempSync(join(tmpdir(), 'kometa-bench-'));
let nextPort = 18_100;
let nextAddress = 0;
const loaders = new Set<ChildProcess>();
const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function cleanup(): void {
  killAllStarted();
  rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping everything this bench started`);
    cleanup();
    process.exit(130);
  });
}
// A run never goes on forever.
const hardDeadline = setTimeout(() => {
  log('hard deadline (40 min) reached; stopping');
  cleanup();
  process.exit(3);
}, 40 * 60_000);
hardDeadline.unref();

interface OpenOptions {
  channel: string;
  perSocketChannel: boolean;
  /** With perSocketChannel: this many channels, subscribers spread over them round-robin. */
  channels?: number;
  trackIds?: boolean;
  frontier?: boolean;
  /** Connections each load process opens at once (default 200). */
  concurrency?: number;
  timeoutMs?: number;
}

interface Connected {
  ms: number;
  ready: number;
  failed: number;
  errorCodes: Record<string, number>;
}

function mergeCounts(list: Record<string, number>[]): Record<string, number> {
  const total: Record<string, number> = {};
  for (const counts of list) for (const [key, n] of Object.entries(counts)) total[key] = (total[key] ?? 0) + n;
  return total;
}

class Load {
  readonly children: ChildProcess[] = [];
  readonly counts: number[] = [];
  #frontiers: number[] = [];
  onFrontier: ((seq: number) => void) | undefined;

  static async open(running: Running, spec: SubscriberSpec, count: number, opts: OpenOptions): Promise<{ load: Load } & Connected> {
    const { load, connected } = Load.start(running, spec, count, opts);
    return { load, ...(await connected) };
  }

  /** Fork the load processes and order them to connect; `connected` settles when all have answered. */
  static start(running: Running, spec: SubscriberSpec, count: number, opts: OpenOptions): { load: Load; connected: Promise<Connected> } {
    const load = new Load();
    const processes = Math.max(1, Math.ceil(count / PER_LOADER));
    let first = 0;
    const results: Promise<ChildMessage & { type: 'connected' }>[] = [];
    for (let p = 0; p < processes; p++) {
      const n = Math.floor(count / processes) + (p < count % processes ? 1 : 0);
      const child = forkLoader(LOADER);
      loaders.add(child);
      child.once('exit', () => loaders.delete(child));
      load.children.push(child);
      load.counts.push(n);
      load.#frontiers.push(0);
      const index = p;
      child.on('message', (message: ChildMessage) => {
        if (message.type === 'frontier') {
          load.#frontiers[index] = message.seq;
          load.onFrontier?.(load.frontier);
        }
      });
      const perAddress = 1000;
      const order: ConnectOrder = {
        type: 'connect',
        host: '127.0.0.1',
        port: running.port,
        kind: spec.kind,
        count: n,
        path: spec.path,
        channel: opts.channel,
        perSocketChannel: opts.perSocketChannel,
        ...(opts.channels === undefined ? {} : { channels: opts.channels }),
        firstIndex: first,
        addressBase: nextAddress,
        perAddress,
        ...(spec.wsFrame === undefined ? {} : { wsFrame: spec.wsFrame }),
        ...(spec.wsSendAfter === undefined ? {} : { wsSendAfter: spec.wsSendAfter }),
        ...(spec.readyToken === undefined ? {} : { readyToken: spec.readyToken }),
        concurrency: opts.concurrency ?? 200,
        trackIds: opts.trackIds ?? false,
        frontier: opts.frontier ?? false,
      };
      nextAddress += Math.ceil(n / perAddress);
      first += n;
      results.push(load.#await(child, 'connected', opts.timeoutMs ?? 10_000 + count) as Promise<ChildMessage & { type: 'connected' }>);
      child.send(order);
    }
    const started = performance.now();
    const connected = Promise.all(results).then((answers) => ({
      ms: performance.now() - started,
      ready: answers.reduce((a, c) => a + c.ready, 0),
      failed: answers.reduce((a, c) => a + c.failed, 0),
      errorCodes: mergeCounts(answers.map((c) => c.errorCodes)),
    }));
    return { load, connected };
  }

  get frontier(): number {
    return Math.min(...this.#frontiers);
  }

  #await(child: ChildProcess, type: ChildMessage['type'], timeoutMs: number): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        child.off('message', onMessage);
        reject(new Error(`load generator: no ${type} within ${timeoutMs} ms`));
      }, timeoutMs);
      const onMessage = (message: ChildMessage) => {
        if (message.type !== type) return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(message);
      };
      child.on('message', onMessage);
    });
  }

  async reset(): Promise<void> {
    await Promise.all(
      this.children.map((child) => {
        const answer = this.#await(child, 'reset', 30_000);
        child.send({ type: 'reset' });
        return answer;
      }),
    );
  }

  async report(): Promise<LoadReport & { processes: number }> {
    const reports = await Promise.all(
      this.children.map((child) => {
        const answer = this.#await(child, 'report', 30_000);
        child.send({ type: 'report' });
        return answer.then((m) => (m as ChildMessage & { type: 'report' }).report);
      }),
    );
    const total: LoadReport & { processes: number } = { frames: 0, unique: 0, duplicates: 0, skipped: 0, latency: [], latencyMax: 0, cpuUs: 0, wallMs: 0, ready: 0, closed: 0, errors: 0, errorCodes: mergeCounts(reports.map((r) => r.errorCodes)), atSeq: {}, processes: reports.length };
    const hist = new Histogram();
    for (const r of reports) {
      total.frames += r.frames;
      total.unique += r.unique;
      total.duplicates += r.duplicates;
      total.skipped += r.skipped;
      total.cpuUs += r.cpuUs;
      total.wallMs = Math.max(total.wallMs, r.wallMs);
      total.ready += r.ready;
      total.closed += r.closed;
      total.errors += r.errors;
      hist.addSparse(r.latency, r.latencyMax);
      for (const [seq, n] of Object.entries(r.atSeq)) total.atSeq[seq] = (total.atSeq[seq] ?? 0) + n;
    }
    total.latency = hist.toSparse();
    total.latencyMax = hist.max;
    return total;
  }

  async drop(): Promise<void> {
    await Promise.all(
      this.children.map((child) => {
        const answer = this.#await(child, 'dropped', 30_000);
        child.send({ type: 'drop' });
        return answer;
      }),
    );
  }

  async reconnect(): Promise<{ ready: number; failed: number }> {
    const answers = this.children.map((child, i) => {
      const answer = this.#await(child, 'connected', 120_000) as Promise<ChildMessage & { type: 'connected' }>;
      child.send({ type: 'reconnect', addressBase: nextAddress });
      nextAddress += Math.ceil(this.counts[i]! / 1000);
      return answer;
    });
    const done = await Promise.all(answers);
    return { ready: done.reduce((a, c) => a + c.ready, 0), failed: done.reduce((a, c) => a + c.failed, 0) };
  }

  async close(): Promise<void> {
    await Promise.all(
      this.children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            const timer = setTimeout(() => {
              if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
            }, 5000);
            child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
            child.send({ type: 'exit' });
          }),
      ),
    );
  }
}

function latencyStats(report: LoadReport): { p50Ms: number; p99Ms: number; maxMs: number } {
  const hist = new Histogram();
  hist.addSparse(report.latency, report.latencyMax);
  const ms = (us: number) => Math.round(us / 10) / 100;
  return { p50Ms: ms(hist.quantile(0.5)), p99Ms: ms(hist.quantile(0.99)), maxMs: ms(hist.max) };
}

async function startSystem(system: System, cpuProfDir?: string, serveArgs?: string[]): Promise<Running> {
  const port = nextPort;
  nextPort += 10;
  return system.start({ port, tmp, ...(cpuProfDir === undefined ? {} : { cpuProfDir }), ...(serveArgs === undefined ? {} : { serveArgs }) });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const results: Record<string, unknown[]> = { idle: [], fanout: [], channels: [], storm: [], workers: [], profile: [] };
const skipped: { system: string; scenario: string; reason: string }[] = [];

/** Run one system's part of a scenario; a failure is recorded and the run goes on. */
async function attempt(system: System, scenario: string, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (error) {
    const reason = `failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
    log(`${scenario} ${system.name}: ${reason}`);
    for (const child of loaders) child.kill('SIGKILL');
    skipped.push({ system: system.name, scenario, reason });
  }
}

function available(system: System, scenario: string): boolean {
  const reason = system.unavailable();
  if (reason === null) return true;
  if (!skipped.some((s) => s.system === system.name)) log(`${system.name}: not installed — skipped (${reason})`);
  skipped.push({ system: system.name, scenario, reason });
  return false;
}

// ---------------------------------------------------------------- idle

async function idle(): Promise<void> {
  for (const count of config.idle) {
    for (const system of systems) {
      if (system.name.endsWith('-ws') || !available(system, 'idle')) continue;
      for (const [transport, spec] of Object.entries(system.transports)) {
        await attempt(system, `idle ${count} ${transport}`, async () => {
          const running = await startSystem(system);
          try {
            await sleep(1000);
            const base = sampleTree(running.pid);
            const opened = await Load.open(running, spec, count, { channel: 'idle', perSocketChannel: false });
            let connectMs = opened.ms;
            if (spec.kind === 'poll') connectMs += await waitForSubscribers(running, 'idle', opened.ready, 20_000);
            await sleep(2000);
            const loaded = sampleTree(running.pid);
            const row = {
              system: system.name,
              transport,
              subscribers: count,
              ready: opened.ready,
              failed: opened.failed,
              connectMs: Math.round(connectMs),
              baseRssKiB: base.rssKiB,
              rssKiB: loaded.rssKiB,
              kibPerSubscriber: Math.round(((loaded.rssKiB - base.rssKiB) / Math.max(1, opened.ready)) * 100) / 100,
              serverCpuSecConnecting: Math.round((loaded.cpuSec - base.cpuSec) * 100) / 100,
            };
            results.idle!.push(row);
            log(`idle ${count} ${system.name}/${transport}: ${row.ready} ready (${row.failed} failed) in ${row.connectMs} ms, ${row.kibPerSubscriber} KiB each`);
            await opened.load.close();
          } finally {
            await running.stop();
          }
        });
      }
    }
  }
}

/** kometa only: wait until the hub counts the long-polls (they get no answer until a message). */
async function waitForSubscribers(running: Running, channel: string, want: number, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    const res = await fetch(`http://127.0.0.1:${running.port}/channels/${channel}`).catch(() => undefined);
    if (res?.ok) {
      const body = (await res.json()) as { subscribers: number };
      if (body.subscribers >= want) break;
    }
    await sleep(50);
  }
  return performance.now() - started;
}

// ---------------------------------------------------------------- fan-out

interface PhaseResult {
  phase: string;
  rate: number | null;
  seconds: number;
  published: number;
  publishFailed: number;
  expected: number;
  delivered: number;
  lost: number;
  duplicates: number;
  deliveriesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  serverCpuSec: number;
  serverCpuPct: number;
  cpuSecPerMillion: number;
  loadCpuPct: number;
  rssKiB: number;
  closedByServer: number;
}

async function phase(
  running: Running,
  load: Load,
  publisher: Publisher,
  channel: string,
  subscribers: number,
  seq: { n: number },
  name: string,
  drive: { rate: number } | { window: number },
  seconds: number,
): Promise<PhaseResult> {
  await sleep(300);
  await load.reset();
  const before = sampleTree(running.pid);
  const started = performance.now();
  const first = seq.n + 1;
  const failedBefore = publisher.failed;
  const send = () => {
    seq.n++;
    publisher.publish(channel, messageData(seq.n, MESSAGE_BYTES));
  };
  const endAt = started + seconds * 1000;
  if ('rate' in drive) {
    // Open loop: the schedule does not wait for anyone.
    const intervalMs = 1000 / drive.rate;
    let due = started;
    while (performance.now() < endAt) {
      const now = performance.now();
      while (due <= now && due < endAt) {
        send();
        due += intervalMs;
      }
      await sleep(Math.max(0, Math.min(due, endAt) - performance.now()));
    }
  } else {
    // Closed loop: at most `window` messages ahead of the slowest subscriber
    // (a stall of 250 ms lets one more go, so a dropped subscriber cannot stop the run).
    await new Promise<void>((resolve) => {
      let stalled: NodeJS.Timeout | undefined;
      const pump = () => {
        clearTimeout(stalled);
        if (performance.now() >= endAt) {
          load.onFrontier = undefined;
          resolve();
          return;
        }
        while (seq.n - load.frontier < drive.window) send();
        stalled = setTimeout(() => {
          send();
          pump();
        }, 250);
      };
      load.onFrontier = pump;
      pump();
    });
  }
  const publishedEnd = performance.now();
  await publisher.idle();
  // Let everything in flight arrive (up to 3 s).
  const last = seq.n;
  const drainUntil = performance.now() + 3000;
  while (load.frontier < last && performance.now() < drainUntil) await sleep(20);
  const deliveredAt = performance.now();
  const after = sampleTree(running.pid);
  const report = await load.report();
  const published = last - first + 1;
  const expected = published * subscribers;
  const elapsed = (deliveredAt - started) / 1000;
  const cpu = after.cpuSec - before.cpuSec;
  void publishedEnd;
  return {
    phase: name,
    rate: 'rate' in drive ? drive.rate : null,
    seconds: Math.round(elapsed * 100) / 100,
    published,
    publishFailed: publisher.failed - failedBefore,
    expected,
    delivered: report.unique,
    lost: Math.max(0, expected - report.unique),
    duplicates: report.duplicates,
    deliveriesPerSec: Math.round(report.unique / elapsed),
    ...latencyStats(report),
    serverCpuSec: Math.round(cpu * 100) / 100,
    serverCpuPct: Math.round((cpu / elapsed) * 100),
    cpuSecPerMillion: report.unique === 0 ? NaN : Math.round((cpu / report.unique) * 1e6 * 100) / 100,
    loadCpuPct: Math.round((report.cpuUs / 1e6 / (report.wallMs / 1000)) * 100),
    rssKiB: after.rssKiB,
    closedByServer: report.closed,
  };
}

async function fanout(list: System[], counts: number[], options: { profile?: boolean } = {}): Promise<void> {
  for (const count of counts) {
    for (const system of list) {
      if (!available(system, 'fanout')) continue;
      await attempt(system, `fanout ${count}`, async () => {
        const spec = system.transports[system.fanout]!;
        const profDir = options.profile ? mkdtempSync(join(tmp, 'prof-')) : undefined;
        const running = await startSystem(system, profDir);
        // One pipelined connection: the channel's messages reach the server in order.
        const publisher = new Publisher('127.0.0.1', running.publish, 1, 16);
        let opened: Awaited<ReturnType<typeof Load.open>> | undefined;
        try {
          opened = await Load.open(running, spec, count, { channel: 'fan', perSocketChannel: false, frontier: true });
          const { load } = opened;
          log(`fanout ${count} ${system.name}: ${opened.ready} subscribers in ${Math.round(opened.ms)} ms (${opened.failed} failed)`);
          const seq = { n: 0 };
          // Warm-up: the first messages reach everyone (and JITs warm up).
          await phase(running, load, publisher, 'fan', opened.ready, seq, 'warm-up', { window: 1 }, quick ? 1 : 2);
          const phases: PhaseResult[] = [];
          for (let r = 0; r < (options.profile ? 1 : repeat); r++) {
            const windowStart = nowUs();
          const result = await phase(running, load, publisher, 'fan', opened.ready, seq, `max#${r + 1}`, { window: 4 }, options.profile ? 10 : config.maxSeconds);
          profileWindow = [windowStart, nowUs()];
            phases.push(result);
            log(`fanout ${count} ${system.name} ${result.phase}: ${result.deliveriesPerSec} deliveries/s, ${result.cpuSecPerMillion} CPU-s/M, p99 ${result.p99Ms} ms, lost ${result.lost}, server ${result.serverCpuPct}% load ${result.loadCpuPct}%`);
          }
          if (!options.profile) {
            for (const rate of config.fixed[count] ?? []) {
              const result = await phase(running, load, publisher, 'fan', opened.ready, seq, `rate ${rate}/s`, { rate }, config.fixedSeconds);
              phases.push(result);
              log(`fanout ${count} ${system.name} ${rate} msg/s: p50 ${result.p50Ms} p99 ${result.p99Ms} max ${result.maxMs} ms, lost ${result.lost}, ${result.cpuSecPerMillion} CPU-s/M, server ${result.serverCpuPct}% load ${result.loadCpuPct}%`);
              if (result.p99Ms >= 250 || result.lost > 0) break; // higher rates only get worse
            }
          }
          const maxPhases = phases.filter((p) => p.phase.startsWith('max'));
          results[options.profile ? 'profile' : 'fanout']!.push({
            system: system.name,
            transport: system.fanout,
            subscribers: count,
            ready: opened.ready,
            connectMs: Math.round(opened.ms),
            median: {
              cpuSecPerMillion: median(maxPhases.map((p) => p.cpuSecPerMillion)),
              deliveriesPerSec: median(maxPhases.map((p) => p.deliveriesPerSec)),
              p50Ms: median(maxPhases.map((p) => p.p50Ms)),
              p99Ms: median(maxPhases.map((p) => p.p99Ms)),
              loadCpuPct: median(maxPhases.map((p) => p.loadCpuPct)),
              lost: maxPhases.reduce((a, p) => a + p.lost, 0),
            },
            phases,
          });
        } finally {
          publisher.close();
          await opened?.load.close();
          await running.stop();
        }
        if (profDir !== undefined) keepProfile(profDir, system, `fanout-${count}`);
      });
    }
  }
}

/** Keep the server's CPU profile under bench/results/profiles/ (gitignored) and put its top in the results. */
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
/** The part of a profiled run to summarize (the measured phase, not start-up and connecting). */
let profileWindow: [number, number] | undefined;

function keepProfile(profDir: string, system: System, label: string): void {
  const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) {
    log(`${system.name}: no CPU profile was written`);
    return;
  }
  mkdirSync(join(RESULTS, 'profiles'), { recursive: true });
  const kept = join(RESULTS, 'profiles', `${system.name}-${label}.cpuprofile`);
  writeFileSync(kept, readFileSync(join(profDir, file)));
  const summary = summarizeProfile(kept, 25, profileWindow);
  const row = results.profile!.at(-1) as Record<string, unknown> | undefined;
  if (row !== undefined) row.profile = { file: kept.slice(RESULTS.length), ...summary };
  log(`${system.name} ${label} profile (${kept}):\n${summary.text}`);
}

// ---------------------------------------------------------------- many channels

async function channels(list: System[], count: number, options: { profile?: boolean } = {}): Promise<void> {
  for (const system of list) {
    if (!available(system, 'channels')) continue;
    await attempt(system, 'channels', async () => {
      const spec = system.transports[system.fanout]!;
      const profDir = options.profile ? mkdtempSync(join(tmp, 'prof-')) : undefined;
      const running = await startSystem(system, profDir);
      const publisher = new Publisher('127.0.0.1', running.publish);
      let opened: Awaited<ReturnType<typeof Load.open>> | undefined;
      try {
        // Connecting 10k subscribers on a busy shared machine can take longer than the default allows.
        opened = await Load.open(running, spec, count, { channel: 'm', perSocketChannel: true, timeoutMs: 60_000 + 2 * count });
        const { load } = opened;
        await sleep(1000);
        await load.reset();
        const before = sampleTree(running.pid);
        const started = performance.now();
        const windowStart = nowUs();
        publishEach(publisher, running, count);
        await publisher.idle();
        const publishedMs = performance.now() - started;
        let report = await load.report();
        const deadline = performance.now() + 15_000;
        while (report.unique < count && performance.now() < deadline) {
          await sleep(50);
          report = await load.report();
        }
        const doneMs = performance.now() - started;
        profileWindow = [windowStart, nowUs()];
        const after = sampleTree(running.pid);
        const cpu = after.cpuSec - before.cpuSec;
        const row = {
          system: system.name,
          transport: system.fanout,
          subscribers: count,
          ready: opened.ready,
          publishMs: Math.round(publishedMs),
          allDeliveredMs: Math.round(doneMs),
          delivered: report.unique,
          lost: count - report.unique,
          publishFailed: publisher.failed,
          ...latencyStats(report),
          serverCpuSec: Math.round(cpu * 100) / 100,
          cpuSecPerMillion: Math.round((cpu / Math.max(1, report.unique)) * 1e6 * 100) / 100,
        };
        results[options.profile ? 'profile' : 'channels']!.push({ scenario: 'channels', ...row });
        log(`channels ${count} ${system.name}: all delivered in ${row.allDeliveredMs} ms, lost ${row.lost}, p99 ${row.p99Ms} ms, ${row.cpuSecPerMillion} CPU-s/M`);
      } finally {
        publisher.close();
        await opened?.load.close();
        await running.stop();
      }
      if (profDir !== undefined) keepProfile(profDir, system, `channels-${count}`);
    });
  }
}

/** One message to each of `count` channels: one request each, or batches of 100 where the system takes them. */
function publishEach(publisher: Publisher, running: Running, count: number): void {
  const batch = running.publish.batch;
  if (batch === undefined) {
    for (let i = 0; i < count; i++) publisher.publish(`m${i}`, messageData(1, MESSAGE_BYTES));
    return;
  }
  for (let start = 0; start < count; start += 100) {
    const items = [];
    for (let i = start; i < Math.min(count, start + 100); i++) items.push({ channel: `m${i}`, data: messageData(1, MESSAGE_BYTES) });
    publisher.publishRequest(batch(items));
  }
}

// ---------------------------------------------------------------- reconnect storm

async function storm(): Promise<void> {
  const count = config.storm;
  const messages = config.stormMessages;
  for (const system of systems) {
    if (!available(system, 'storm')) continue;
    const sse = system.transports.sse;
    if (!system.resume || sse === undefined) {
      log(`storm ${system.name}: skipped (no resume from Last-Event-ID)`);
      skipped.push({ system: system.name, scenario: 'storm', reason: 'no resume from Last-Event-ID' });
      continue;
    }
    await attempt(system, 'storm', async () => {
      const running = await startSystem(system);
      const publisher = new Publisher('127.0.0.1', running.publish, 1, 16);
      let opened: Awaited<ReturnType<typeof Load.open>> | undefined;
      try {
        opened = await Load.open(running, sse, count, { channel: 'storm', perSocketChannel: false, trackIds: true, frontier: true });
        const { load } = opened;
        const seq = { n: 0 };
        await phase(running, load, publisher, 'storm', opened.ready, seq, 'live', { window: 1 }, 1);
        const live = seq.n;
        await load.drop();
        await sleep(1000);
        for (let i = 0; i < messages; i++) {
          seq.n++;
          publisher.publish('storm', messageData(seq.n, MESSAGE_BYTES));
        }
        await publisher.idle();
        await load.reset();
        const before = sampleTree(running.pid);
        const started = performance.now();
        const reconnected = await load.reconnect();
        const reconnectMs = performance.now() - started;
        let report = await load.report();
        const deadline = performance.now() + 30_000;
        while ((report.atSeq[seq.n] ?? 0) < count && performance.now() < deadline) {
          await sleep(25);
          report = await load.report();
        }
        const caughtUpMs = performance.now() - started;
        const after = sampleTree(running.pid);
        const expected = count * messages;
        const row = {
          system: system.name,
          subscribers: count,
          liveMessages: live,
          missedMessages: messages,
          reconnected: reconnected.ready,
          failed: reconnected.failed,
          reconnectMs: Math.round(reconnectMs),
          allCaughtUpMs: Math.round(caughtUpMs),
          caughtUp: report.atSeq[seq.n] ?? 0,
          replayed: report.unique,
          lost: Math.max(0, expected - report.unique),
          duplicates: report.duplicates,
          replayPerSec: Math.round(report.unique / (caughtUpMs / 1000)),
          serverCpuSec: Math.round((after.cpuSec - before.cpuSec) * 100) / 100,
        };
        results.storm!.push(row);
        log(`storm ${count} ${system.name}: ${row.caughtUp}/${count} caught up in ${row.allCaughtUpMs} ms (reconnects took ${row.reconnectMs} ms), replayed ${row.replayed}/${expected}, lost ${row.lost}, duplicates ${row.duplicates}`);
      } finally {
        publisher.close();
        await opened?.load.close();
        await running.stop();
      }
    });
  }
}

// ---------------------------------------------------------------- workers: idle subscribers over N processes

/** Stop connecting when the machine has less than this left (KiB). */
const MEMORY_FLOOR_KIB = 2 * 1024 * 1024;

function openFilesLimit(): number {
  const line = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'latin1'));
  return line ? Number(line[1]) : NaN;
}

/**
 * kometa serve --redis <private redis> --workers N (node:cluster, one port):
 * as many idle SSE subscribers as N processes hold, spread over channels and
 * over load processes of at most 10k sockets each; then one message to every
 * channel, and every subscriber must get it. Per-worker counts are the
 * sockets each worker PID holds (/proc/<pid>/fd) over what it held before.
 */
async function workersScenario(): Promise<void> {
  const system = systems.find((s) => s.name === 'kometa');
  if (system === undefined || !available(system, 'workers')) return;
  if (!commandExists('redis-server')) {
    log('workers: redis-server not installed — skipped');
    skipped.push({ system: 'kometa', scenario: 'workers', reason: 'redis-server not installed' });
    return;
  }
  const { workers, subscribers: count, channels } = workersConfig;
  const processes = Math.max(1, Math.ceil(count / PER_LOADER));
  // About 500 connections opening at once in all (the listen backlog is 511).
  const concurrency = Math.max(10, Math.ceil(500 / processes));
  for (let r = 0; r < repeat; r++) {
    await attempt(system, `workers ${count}`, async () => {
      const redisPort = nextPort;
      nextPort += 10;
      const redis = await startRedis(redisPort, tmp);
      let running: Running | undefined;
      let load: Load | undefined;
      let publisher: Publisher | undefined;
      let progress: NodeJS.Timeout | undefined;
      try {
        running = await startSystem(system, undefined, ['--redis', `redis://127.0.0.1:${redisPort}`, '--workers', String(workers), '--shutdown-grace', '1']);
        const server = running;
        await sleep(1500);
        const workerPids = childPids(server.pid);
        if (workerPids.length !== workers) throw new Error(`expected ${workers} worker processes, found ${workerPids.length}`);
        const baseTree = sampleTree(server.pid);
        const baseWorkers = new Map(workerPids.map((pid) => [pid, sampleProcess(pid)]));
        const held = () => workerPids.map((pid) => {
          const now = sampleProcess(pid);
          return { ...now, subscribers: now.sockets - (baseWorkers.get(pid)?.sockets ?? 0) };
        });
        log(`workers ${count}: ${workers} workers (PIDs ${workerPids.join(', ')}), redis on ${redisPort}; ${processes} load processes × ≤${PER_LOADER}, ${concurrency} connecting at once each, ${channels} channels`);

        // Connect, with progress from the server side and a memory guard.
        let stoppedFor: string | undefined;
        let abort: (error: Error) => void = () => {};
        const aborted = new Promise<never>((_, reject) => (abort = reject));
        aborted.catch(() => {});
        let peak = 0;
        let lowestMemKiB = memAvailableKiB();
        const started = Load.start(server, { kind: 'sse', path: '/sub/{ch}', readyToken: '\r\n\r\n' }, count, { channel: 'w', perSocketChannel: true, channels, concurrency, timeoutMs: 30_000 + count });
        load = started.load;
        const t0 = performance.now();
        progress = setInterval(() => {
          const mem = memAvailableKiB();
          lowestMemKiB = Math.min(lowestMemKiB, mem);
          if (mem < MEMORY_FLOOR_KIB && stoppedFor === undefined) {
            stoppedFor = `memory: MemAvailable ${Math.round(mem / 1024)} MiB`;
            log(`workers ${count}: ${stoppedFor}; stopping the load`);
            for (const child of started.load.children) child.kill('SIGKILL');
            abort(new Error(stoppedFor));
          }
          const now = held();
          const total = now.reduce((a, w) => a + w.subscribers, 0);
          peak = Math.max(peak, total);
          log(`workers ${count}: ${total} connected (${now.map((w) => w.subscribers).join(' / ')}) after ${((performance.now() - t0) / 1000).toFixed(0)} s, MemAvailable ${Math.round(mem / 1024)} MiB`);
        }, 5000);
        let connected: Connected;
        let connectError: string | undefined;
        try {
          connected = await Promise.race([started.connected, aborted]);
        } catch (error) {
          connectError = error instanceof Error ? error.message : String(error);
          const partial = stoppedFor === undefined ? await load.report().catch(() => undefined) : undefined;
          connected = { ms: performance.now() - t0, ready: partial?.ready ?? 0, failed: count - (partial?.ready ?? 0), errorCodes: partial?.errorCodes ?? {} };
        }
        clearInterval(progress);
        await sleep(2000);
        const loadedTree = sampleTree(server.pid);
        const perWorker = held();
        const primary = sampleProcess(server.pid);
        const redisRss = sampleProcess(redis.pid).rssKiB;
        const serverSide = perWorker.reduce((a, w) => a + w.subscribers, 0);
        peak = Math.max(peak, serverSide);
        log(`workers ${count}: ${connected.ready} ready, ${connected.failed} failed in ${Math.round(connected.ms)} ms; per worker ${perWorker.map((w) => w.subscribers).join(' / ')}; errors ${JSON.stringify(connected.errorCodes)}${connectError === undefined ? '' : `; ${connectError}`}`);

        // One message to every channel; every subscriber must get it.
        let delivery: Record<string, unknown> = { skipped: 'not connected' };
        if (stoppedFor === undefined && connected.ready > 0) {
          await load.reset();
          publisher = new Publisher('127.0.0.1', server.publish, 8);
          const sent = performance.now();
          for (let c = 0; c < channels; c++) publisher.publish(`w${c}`, messageData(1, MESSAGE_BYTES));
          await publisher.idle();
          const publishMs = performance.now() - sent;
          let report = await load.report();
          // A refused publish (e.g. 429 when every worker is at its connection limit) reaches no one:
          // "lost" then cannot be told per subscriber, and only the deliveries are reported.
          const allAccepted = publisher.failed === 0;
          const deadline = performance.now() + (publisher.acked === 0 ? 0 : 30_000);
          while (report.unique < report.ready && performance.now() < deadline) {
            await sleep(100);
            report = await load.report();
          }
          delivery = {
            published: channels,
            publishFailed: publisher.failed,
            publishMs: Math.round(publishMs),
            subscribersAtPublish: report.ready,
            delivered: report.unique,
            lost: allAccepted ? Math.max(0, report.ready - report.unique) : null,
            duplicates: report.duplicates,
            allDeliveredMs: Math.round(performance.now() - sent),
            ...latencyStats(report),
            closedByServer: report.closed,
          };
          log(`workers ${count}: delivery ${report.unique}/${report.ready} (lost ${String(delivery.lost)}) in ${delivery.allDeliveredMs as number} ms, p99 ${delivery.p99Ms as number} ms, publish failures ${publisher.failed}`);
        }
        const rssDelta = loadedTree.rssKiB - baseTree.rssKiB;
        const row = {
          workers,
          subscribers: count,
          channels,
          loadProcesses: processes,
          openFilesLimit: openFilesLimit(),
          ready: connected.ready,
          failed: connected.failed,
          errorCodes: connected.errorCodes,
          connectError: connectError ?? null,
          stoppedFor: stoppedFor ?? null,
          serverSidePeak: peak,
          connectMs: Math.round(connected.ms),
          connectsPerSec: Math.round(connected.ready / (connected.ms / 1000)),
          baseRssKiB: baseTree.rssKiB,
          rssKiB: loadedTree.rssKiB,
          kibPerSubscriber: Math.round((rssDelta / Math.max(1, connected.ready)) * 100) / 100,
          primaryRssKiB: primary.rssKiB,
          redisRssKiB: redisRss,
          serverCpuSecConnecting: Math.round((loadedTree.cpuSec - baseTree.cpuSec) * 100) / 100,
          lowestMemAvailableMiB: Math.round(lowestMemKiB / 1024),
          perWorker: perWorker.map((w) => ({ pid: w.pid, subscribers: w.subscribers, fds: w.fds, rssKiB: w.rssKiB, baseRssKiB: baseWorkers.get(w.pid)?.rssKiB ?? 0 })),
          delivery,
        };
        results.workers!.push(row);
        log(`workers ${count}: server RSS ${Math.round(row.rssKiB / 1024)} MiB (${row.kibPerSubscriber} KiB per subscriber), redis ${Math.round(redisRss / 1024)} MiB`);
      } finally {
        clearInterval(progress);
        publisher?.close();
        await load?.close();
        await running?.stop();
        await redis.stop();
      }
    });
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  pinSelf();
  const startedAt = new Date();
  const loadAverageAtStart = loadavg();
  log(`kometa bench: ${scenarios.join(', ')}${quick ? ' (quick)' : ''}; systems ${systems.map((s) => s.name).join(', ')}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  if (!hasTaskset()) log('taskset not found: server and load share the cores');
  for (const scenario of scenarios) {
    log(`--- ${scenario}`);
    if (scenario === 'idle') await idle();
    if (scenario === 'fanout') await fanout(systems, config.fanout);
    // Rounds go over every system in turn, so that a noisy minute hits all of them alike.
    if (scenario === 'channels') for (let r = 0; r < channelRounds; r++) await channels(systems, config.channels);
    if (scenario === 'storm') await storm();
    if (scenario === 'workers') await workersScenario();
    if (scenario === 'profile') {
      const kometas = systems.filter((s) => s.name.startsWith('kometa') && !s.name.endsWith('-ws'));
      await fanout(kometas, [config.profileSubs], { profile: true });
      await channels(kometas, config.profileSubs, { profile: true });
    }
    if (scenario === 'profile-channels') {
      await channels(systems.filter((s) => s.name.startsWith('kometa')), config.channels, { profile: true });
    }
  }
  const document = {
    date: startedAt.toISOString(),
    durationSec: Math.round((Date.now() - startedAt.getTime()) / 1000),
    quick,
    repeat,
    scenarios,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model ?? '?',
      loadAverageAtStart,
      taskset: hasTaskset(),
      note: '2 cores, shared with other work; server on core 0, load generators and publisher on core 1',
    },
    versions: {
      ...Object.fromEntries(systems.map((s) => [s.name, s.unavailable() === null ? s.version() : 'not installed'])),
      ...(scenarios.includes('workers') ? { redis: redisVersion() } : {}),
    },
    node: process.versions.node,
    systems: Object.fromEntries(systems.map((s) => [s.name, s.description])),
    messageBytes: MESSAGE_BYTES,
    skipped,
    results,
  };
  mkdirSync(RESULTS, { recursive: true });
  const name = values.out ?? `${startedAt.toISOString().slice(0, 19).replace(/[:T]/g, '-')}${quick ? '-quick' : ''}`;
  writeFileSync(join(RESULTS, `${name}.json`), JSON.stringify(document, null, 2) + '\n');
  const markdown = renderMarkdown(document);
  writeFileSync(join(RESULTS, `${name}.md`), markdown);
  process.stdout.write(markdown);
  log(`results: bench/results/${name}.json and .md (${document.durationSec} s)`);
}

main().then(
  () => {
    cleanup();
    process.exit(0);
  },
  (error: unknown) => {
    log(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    cleanup();
    process.exit(1);
  },
);
