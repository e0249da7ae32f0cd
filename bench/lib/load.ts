/*
 * The subscribers of a benchmark: load processes (bench/lib/loader.ts, at
 * most PER_LOADER sockets each) forked and ordered over IPC to connect,
 * reset their counters, report, drop and reconnect.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Bench, PER_LOADER } from './bench.js';
import { Histogram } from './histogram.js';
import { forkLoader } from './procs.js';
import type { ChildMessage, ConnectOrder, LoadReport } from './protocol.js';
import type { Running, SubscriberSpec } from './systems.js';

const LOADER = fileURLToPath(new URL('./loader.js', import.meta.url));

export interface OpenOptions {
  channel: string;
  perSocketChannel: boolean;
  /** With perSocketChannel: this many channels, subscribers spread over them round-robin. */
  channels?: number;
  trackIds?: boolean;
  frontier?: boolean;
  /** Count in-band joins and leaves (subscribers that asked with `?presence=1`). */
  countEvents?: boolean;
  /** Global index of the first subscriber (`{i}` in the path; channel names): default 0. */
  firstIndex?: number;
  /** Connections each load process opens at once (default 200). */
  concurrency?: number;
  timeoutMs?: number;
}

export interface Connected {
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

export class Load {
  readonly children: ChildProcess[] = [];
  readonly counts: number[] = [];
  #frontiers: number[] = [];
  onFrontier: ((seq: number) => void) | undefined;
  #eventFrontiers: number[] = [];
  /** With countEvents: called when every subscriber has seen one more join or leave. */
  onEvents: ((n: number) => void) | undefined;
  readonly #bench: Bench;

  private constructor(bench: Bench) {
    this.#bench = bench;
  }

  static async open(
    bench: Bench,
    running: Running,
    spec: SubscriberSpec,
    count: number,
    opts: OpenOptions,
  ): Promise<{ load: Load } & Connected> {
    const { load, connected } = Load.start(bench, running, spec, count, opts);
    return { load, ...(await connected) };
  }

  /** Fork the load processes and order them to connect; `connected` settles when all have answered. */
  static start(
    bench: Bench,
    running: Running,
    spec: SubscriberSpec,
    count: number,
    opts: OpenOptions,
  ): { load: Load; connected: Promise<Connected> } {
    const load = new Load(bench);
    const processes = Math.max(1, Math.ceil(count / PER_LOADER));
    let first = opts.firstIndex ?? 0;
    const results: Promise<ChildMessage & { type: 'connected' }>[] = [];
    for (let p = 0; p < processes; p++) {
      const n = Math.floor(count / processes) + (p < count % processes ? 1 : 0);
      const child = forkLoader(LOADER);
      bench.loaders.add(child);
      child.once('exit', () => bench.loaders.delete(child));
      load.children.push(child);
      load.counts.push(n);
      load.#frontiers.push(0);
      load.#eventFrontiers.push(0);
      const index = p;
      child.on('message', (message: ChildMessage) => {
        if (message.type === 'frontier') {
          load.#frontiers[index] = message.seq;
          load.onFrontier?.(load.frontier);
        } else if (message.type === 'events') {
          load.#eventFrontiers[index] = message.n;
          load.onEvents?.(load.eventFrontier);
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
        addressBase: bench.addresses(Math.ceil(n / perAddress)),
        perAddress,
        ...(spec.wsFrame === undefined ? {} : { wsFrame: spec.wsFrame }),
        ...(spec.wsSendAfter === undefined ? {} : { wsSendAfter: spec.wsSendAfter }),
        ...(spec.readyToken === undefined ? {} : { readyToken: spec.readyToken }),
        concurrency: opts.concurrency ?? 200,
        trackIds: opts.trackIds ?? false,
        frontier: opts.frontier ?? false,
        ...(opts.countEvents === true ? { countEvents: true } : {}),
      };
      first += n;
      const timeoutMs = opts.timeoutMs ?? 10_000 + count;
      results.push(load.#await(child, 'connected', timeoutMs) as Promise<ChildMessage & { type: 'connected' }>);
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

  /** Joins and leaves every subscriber has seen since the last reset (countEvents). */
  get eventFrontier(): number {
    return Math.min(...this.#eventFrontiers);
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
    this.#eventFrontiers.fill(0);
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
    const total: LoadReport & { processes: number } = {
      ...{ frames: 0, unique: 0, duplicates: 0, skipped: 0, latency: [], latencyMax: 0, cpuUs: 0, wallMs: 0 },
      ...{ ready: 0, closed: 0, errors: 0, atSeq: {}, processes: reports.length },
      ...{ joins: 0, leaves: 0, atEvents: {} },
      errorCodes: mergeCounts(reports.map((r) => r.errorCodes)),
    };
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
      total.joins += r.joins;
      total.leaves += r.leaves;
      for (const [at, n] of Object.entries(r.atEvents)) total.atEvents[at] = (total.atEvents[at] ?? 0) + n;
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
      child.send({ type: 'reconnect', addressBase: this.#bench.addresses(Math.ceil(this.counts[i]! / 1000)) });
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

export function latencyStats(report: LoadReport): { p50Ms: number; p99Ms: number; maxMs: number } {
  const hist = new Histogram();
  hist.addSparse(report.latency, report.latencyMax);
  const ms = (us: number) => Math.round(us / 10) / 100;
  return { p50Ms: ms(hist.quantile(0.5)), p99Ms: ms(hist.quantile(0.99)), maxMs: ms(hist.max) };
}
