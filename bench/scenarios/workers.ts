/*
 * workers: kometa serve --redis <private redis> --workers N (node:cluster, one
 * port): as many idle SSE subscribers as N processes hold, spread over
 * channels and over load processes of at most 10k sockets each; then one
 * message to every channel, and every subscriber must get it. Per-worker
 * counts are the sockets each worker PID holds (/proc/<pid>/fd) over what it
 * held before.
 */
import { readFileSync } from 'node:fs';
import { type Bench, MESSAGE_BYTES, PER_LOADER, log, sleep } from '../lib/bench.js';
import { type Connected, Load, latencyStats } from '../lib/load.js';
import { childPids, commandExists, memAvailableKiB, sampleProcess, sampleTree } from '../lib/procs.js';
import { messageData } from '../lib/protocol.js';
import { Publisher } from '../lib/publisher.js';
import { type Running, type System, startRedis } from '../lib/systems.js';

/** Stop connecting when the machine has less than this left (KiB). */
const MEMORY_FLOOR_KIB = 2 * 1024 * 1024;

function openFilesLimit(): number {
  const line = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'latin1'));
  return line ? Number(line[1]) : NaN;
}

type Sample = ReturnType<typeof sampleProcess>;

/** The server's worker processes, and how many subscriber sockets each holds over what it held at the start. */
class WorkerPids {
  readonly #base: Map<number, Sample>;

  constructor(readonly pids: number[]) {
    this.#base = new Map(pids.map((pid) => [pid, sampleProcess(pid)]));
  }

  held(): (Sample & { subscribers: number })[] {
    return this.pids.map((pid) => {
      const now = sampleProcess(pid);
      return { ...now, subscribers: now.sockets - (this.#base.get(pid)?.sockets ?? 0) };
    });
  }

  baseRssKiB(pid: number): number {
    return this.#base.get(pid)?.rssKiB ?? 0;
  }
}

export async function workersScenario(bench: Bench): Promise<void> {
  const system = bench.systems.find((s) => s.name === 'kometa');
  if (system === undefined || !bench.available(system, 'workers')) return;
  if (!commandExists('redis-server')) {
    log('workers: redis-server not installed — skipped');
    bench.skipped.push({ system: 'kometa', scenario: 'workers', reason: 'redis-server not installed' });
    return;
  }
  for (let r = 0; r < bench.config.repeat; r++) {
    await bench.attempt(system, `workers ${bench.config.workers.subscribers}`, () => workersOne(bench, system));
  }
}

async function workersOne(bench: Bench, system: System): Promise<void> {
  const { workers, subscribers: count } = bench.config.workers;
  const redisPort = bench.port();
  const redis = await startRedis(redisPort, bench.tmp);
  let running: Running | undefined;
  let connecting: Connecting | undefined;
  try {
    const args = ['--redis', `redis://127.0.0.1:${redisPort}`, '--workers', String(workers), '--shutdown-grace', '1'];
    running = await bench.startSystem(system, undefined, args);
    const server = running;
    await sleep(1500);
    const pids = childPids(server.pid);
    if (pids.length !== workers) throw new Error(`expected ${workers} worker processes, found ${pids.length}`);
    const baseTree = sampleTree(server.pid);
    const perPid = new WorkerPids(pids);
    log(`workers ${count}: ${workers} workers (PIDs ${pids.join(', ')}), redis on ${redisPort}`);
    connecting = new Connecting(bench, server, perPid);
    const connected = await connecting.connect();
    await sleep(2000);
    const loadedTree = sampleTree(server.pid);
    const perWorker = perPid.held();
    const primary = sampleProcess(server.pid);
    const redisRss = sampleProcess(redis.pid).rssKiB;
    const serverSide = perWorker.reduce((a, w) => a + w.subscribers, 0);
    connecting.peak = Math.max(connecting.peak, serverSide);
    log(
      `workers ${count}: ${connected.ready} ready, ${connected.failed} failed in ${Math.round(connected.ms)} ms; ` +
        `per worker ${perWorker.map((w) => w.subscribers).join(' / ')}; ` +
        `errors ${JSON.stringify(connected.errorCodes)}` +
        `${connecting.error === undefined ? '' : `; ${connecting.error}`}`,
    );
    const delivery =
      connecting.stoppedFor === undefined && connected.ready > 0
        ? await deliverOnce(bench, server, connecting.load)
        : { skipped: 'not connected' };
    const rssDelta = loadedTree.rssKiB - baseTree.rssKiB;
    const row = {
      workers,
      subscribers: count,
      channels: bench.config.workers.channels,
      loadProcesses: connecting.processes,
      openFilesLimit: openFilesLimit(),
      ready: connected.ready,
      failed: connected.failed,
      errorCodes: connected.errorCodes,
      connectError: connecting.error ?? null,
      stoppedFor: connecting.stoppedFor ?? null,
      serverSidePeak: connecting.peak,
      connectMs: Math.round(connected.ms),
      connectsPerSec: Math.round(connected.ready / (connected.ms / 1000)),
      baseRssKiB: baseTree.rssKiB,
      rssKiB: loadedTree.rssKiB,
      kibPerSubscriber: Math.round((rssDelta / Math.max(1, connected.ready)) * 100) / 100,
      primaryRssKiB: primary.rssKiB,
      redisRssKiB: redisRss,
      serverCpuSecConnecting: Math.round((loadedTree.cpuSec - baseTree.cpuSec) * 100) / 100,
      lowestMemAvailableMiB: Math.round(connecting.lowestMemKiB / 1024),
      perWorker: perWorker.map((w) => ({
        ...{ pid: w.pid, subscribers: w.subscribers, fds: w.fds, rssKiB: w.rssKiB },
        baseRssKiB: perPid.baseRssKiB(w.pid),
      })),
      delivery,
    };
    bench.results.workers!.push(row);
    log(
      `workers ${count}: server RSS ${Math.round(row.rssKiB / 1024)} MiB ` +
        `(${row.kibPerSubscriber} KiB per subscriber), ` +
        `redis ${Math.round(redisRss / 1024)} MiB`,
    );
  } finally {
    connecting?.stopProgress();
    await connecting?.load.close();
    await running?.stop();
    await redis.stop();
  }
}

/** Connecting every subscriber, with progress from the server side and a memory guard. */
class Connecting {
  readonly processes: number;
  readonly load: Load;
  peak = 0;
  lowestMemKiB = memAvailableKiB();
  stoppedFor: string | undefined;
  error: string | undefined;
  readonly #connected: Promise<Connected>;
  readonly #aborted: Promise<never>;
  #abort: (error: Error) => void = () => {};
  #progress: NodeJS.Timeout | undefined;
  readonly #t0 = performance.now();

  constructor(
    bench: Bench,
    server: Running,
    readonly perPid: WorkerPids,
  ) {
    const { subscribers: count, channels } = bench.config.workers;
    this.processes = Math.max(1, Math.ceil(count / PER_LOADER));
    // About 500 connections opening at once in all (the listen backlog is 511).
    const concurrency = Math.max(10, Math.ceil(500 / this.processes));
    log(`workers ${count}: ${this.processes} load processes × ≤${PER_LOADER}, ${concurrency} connecting at once each`);
    this.#aborted = new Promise<never>((_, reject) => (this.#abort = reject));
    this.#aborted.catch(() => {});
    const spec = { kind: 'sse', path: '/sub/{ch}', readyToken: '\r\n\r\n' } as const;
    const options = { channel: 'w', perSocketChannel: true, channels, concurrency, timeoutMs: 30_000 + count };
    const started = Load.start(bench, server, spec, count, options);
    this.load = started.load;
    this.#connected = started.connected;
    this.#progress = setInterval(() => this.#check(count), 5000);
  }

  #check(count: number): void {
    const mem = memAvailableKiB();
    this.lowestMemKiB = Math.min(this.lowestMemKiB, mem);
    if (mem < MEMORY_FLOOR_KIB && this.stoppedFor === undefined) {
      this.stoppedFor = `memory: MemAvailable ${Math.round(mem / 1024)} MiB`;
      log(`workers ${count}: ${this.stoppedFor}; stopping the load`);
      for (const child of this.load.children) child.kill('SIGKILL');
      this.#abort(new Error(this.stoppedFor));
    }
    const now = this.perPid.held();
    const total = now.reduce((a, w) => a + w.subscribers, 0);
    this.peak = Math.max(this.peak, total);
    const seconds = ((performance.now() - this.#t0) / 1000).toFixed(0);
    log(
      `workers ${count}: ${total} connected (${now.map((w) => w.subscribers).join(' / ')}) after ${seconds} s, ` +
        `MemAvailable ${Math.round(mem / 1024)} MiB`,
    );
  }

  async connect(): Promise<Connected> {
    const count = this.load.counts.reduce((a, n) => a + n, 0);
    try {
      return await Promise.race([this.#connected, this.#aborted]);
    } catch (error) {
      this.error = error instanceof Error ? error.message : String(error);
      const partial = this.stoppedFor === undefined ? await this.load.report().catch(() => undefined) : undefined;
      const ready = partial?.ready ?? 0;
      return { ms: performance.now() - this.#t0, ready, failed: count - ready, errorCodes: partial?.errorCodes ?? {} };
    } finally {
      this.stopProgress();
    }
  }

  stopProgress(): void {
    clearInterval(this.#progress);
  }
}

/** One message to every channel; every subscriber must get it. */
async function deliverOnce(bench: Bench, server: Running, load: Load): Promise<Record<string, unknown>> {
  const { channels, subscribers: count } = bench.config.workers;
  await load.reset();
  const publisher = new Publisher('127.0.0.1', server.publish, 8);
  try {
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
    const delivery = {
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
    log(
      `workers ${count}: delivery ${report.unique}/${report.ready} (lost ${String(delivery.lost)}) ` +
        `in ${delivery.allDeliveredMs} ms, p99 ${delivery.p99Ms} ms, publish failures ${publisher.failed}`,
    );
    return delivery;
  } finally {
    publisher.close();
  }
}
