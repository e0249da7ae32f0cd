/*
 * What every scenario of `npm run bench` shares: the settings of this run,
 * the systems under test, ports and source addresses handed out in turn, the
 * load processes started (so that a failure can stop them), and the results.
 * One Bench is made by bench/run.ts per run; nothing here runs at import.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAllStarted } from './procs.js';
import type { Running, System } from './systems.js';

export const RESULTS = fileURLToPath(new URL('../../../bench/results/', import.meta.url));
/** Subscribers per load process. */
export const PER_LOADER = 10_000;
export const MESSAGE_BYTES = 100;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function log(line: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${line}\n`);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Sizes of each scenario: the full run, or `--quick`. */
export interface BenchConfig {
  readonly quick: boolean;
  readonly repeat: number;
  readonly idle: number[];
  readonly fanout: number[];
  readonly channels: number;
  readonly storm: number;
  readonly maxSeconds: number;
  readonly fixedSeconds: number;
  readonly fixed: Record<number, number[]>;
  readonly stormMessages: number;
  readonly profileSubs: number;
  /** The workers scenario: kometa serve --redis --workers N, idle SSE subscribers spread over channels. */
  readonly workers: { readonly workers: number; readonly subscribers: number; readonly channels: number };
  /** The redis-cluster scenario: nodes × channels × subscribers per channel per node, and messages. */
  readonly cluster: {
    readonly nodes: number;
    readonly channels: number;
    readonly perChannel: number;
    readonly messages: number;
  };
}

export function benchConfig(quick: boolean, repeat: number, workers: number, subscribers: number): BenchConfig {
  const common = { quick, repeat };
  if (quick) {
    return {
      ...common,
      idle: [1000],
      fanout: [500, 2000],
      channels: 2000,
      storm: 2000,
      maxSeconds: 3,
      fixedSeconds: 2,
      fixed: { 500: [100], 2000: [20, 50] },
      stormMessages: 20,
      profileSubs: 2000,
      workers: { workers, subscribers, channels: 100 },
      cluster: { nodes: 2, channels: 50, perChannel: 4, messages: 2000 },
    };
  }
  return {
    ...common,
    idle: [5000, 19000],
    fanout: [1000, 10000],
    channels: 10000,
    storm: 10000,
    maxSeconds: 5,
    fixedSeconds: 4,
    fixed: { 1000: [100, 300], 10000: [2, 5, 10, 20, 30, 40] },
    stormMessages: 50,
    profileSubs: 10000,
    workers: { workers, subscribers, channels: 1000 },
    cluster: { nodes: 2, channels: 100, perChannel: 4, messages: 5000 },
  };
}

export interface Skipped {
  readonly system: string;
  readonly scenario: string;
  readonly reason: string;
}

export class Bench {
  readonly tmp = mkdtempSync(join(tmpdir(), 'kometa-bench-'));
  /** Load processes alive now. */
  readonly loaders = new Set<ChildProcess>();
  readonly results: Record<string, unknown[]> = {
    idle: [],
    fanout: [],
    channels: [],
    storm: [],
    workers: [],
    profile: [],
    'redis-cluster': [],
    h2: [],
    herd: [],
    presence: [],
  };
  readonly skipped: Skipped[] = [];
  /** The part of a profiled run to summarize (the measured phase, not start-up and connecting). */
  profileWindow: [number, number] | undefined;
  /** KOMETA_BENCH_PORT: where the port blocks start, so two benches on one machine need not collide. */
  #nextPort = Number(process.env.KOMETA_BENCH_PORT ?? 18_100);
  #nextAddress = 0;

  constructor(
    readonly config: BenchConfig,
    readonly systems: System[],
  ) {}

  /** A block of 10 ports of its own for one server (and what it starts beside it). */
  port(): number {
    const port = this.#nextPort;
    this.#nextPort += 10;
    return port;
  }

  /** The first of `blocks` fresh 127.0.1.x source addresses, so no two loads share ephemeral ports. */
  addresses(blocks: number): number {
    const first = this.#nextAddress;
    this.#nextAddress += blocks;
    return first;
  }

  async startSystem(system: System, cpuProfDir?: string, serveArgs?: string[]): Promise<Running> {
    // Another run on the shared machine may hold this block's port: take the next block, a few times.
    for (let tries = 1; ; tries++) {
      try {
        return await this.#start(system, cpuProfDir, serveArgs);
      } catch (error) {
        if (tries >= 5 || !(error instanceof Error) || !error.message.includes('EADDRINUSE')) throw error;
      }
    }
  }

  #start(system: System, cpuProfDir?: string, serveArgs?: string[]): Promise<Running> {
    return system.start({
      port: this.port(),
      tmp: this.tmp,
      ...(cpuProfDir === undefined ? {} : { cpuProfDir }),
      ...(serveArgs === undefined ? {} : { serveArgs }),
    });
  }

  /** Run one system's part of a scenario; a failure is recorded and the run goes on. */
  async attempt(system: System, scenario: string, run: () => Promise<void>): Promise<void> {
    try {
      await run();
    } catch (error) {
      const reason = `failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
      log(`${scenario} ${system.name}: ${reason}`);
      for (const child of this.loaders) child.kill('SIGKILL');
      this.skipped.push({ system: system.name, scenario, reason });
    }
  }

  available(system: System, scenario: string): boolean {
    const onlyChannels = system.channelsOnly === true && scenario !== 'channels';
    const reason = onlyChannels ? 'measures the many-channels scenario only' : system.unavailable();
    if (reason === null) return true;
    if (!this.skipped.some((s) => s.system === system.name)) log(`${system.name}: not installed — skipped (${reason})`);
    this.skipped.push({ system: system.name, scenario, reason });
    return false;
  }

  cleanup(): void {
    killAllStarted();
    rmSync(this.tmp, { recursive: true, force: true });
  }
}
