/*
 * One measured phase of a fan-out: publish to one channel for some seconds,
 * either at a fixed rate (open loop) or as fast as the slowest subscriber
 * keeps up (closed loop), then count deliveries, latency and server CPU.
 */
import { MESSAGE_BYTES, sleep } from './bench.js';
import { type Load, latencyStats } from './load.js';
import { sampleTree } from './procs.js';
import { messageData } from './protocol.js';
import type { Publisher } from './publisher.js';
import type { Running } from './systems.js';

export interface PhaseResult {
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

/** Where a phase publishes: the server, its subscribers, the publisher, the channel and its running sequence. */
export interface PhaseTarget {
  readonly running: Running;
  readonly load: Load;
  readonly publisher: Publisher;
  readonly channel: string;
  readonly subscribers: number;
  readonly seq: { n: number };
}

export type Drive = { rate: number } | { window: number };

/** Open loop: the schedule does not wait for anyone. */
async function driveAtRate(send: () => void, rate: number, started: number, endAt: number): Promise<void> {
  const intervalMs = 1000 / rate;
  let due = started;
  while (performance.now() < endAt) {
    const now = performance.now();
    while (due <= now && due < endAt) {
      send();
      due += intervalMs;
    }
    await sleep(Math.max(0, Math.min(due, endAt) - performance.now()));
  }
}

/**
 * Closed loop: at most `window` messages ahead of the slowest subscriber
 * (a stall of 250 ms lets one more go, so a dropped subscriber cannot stop the run).
 */
function driveInWindow(target: PhaseTarget, send: () => void, window: number, endAt: number): Promise<void> {
  const { load, seq } = target;
  return new Promise<void>((resolve) => {
    let stalled: NodeJS.Timeout | undefined;
    const pump = () => {
      clearTimeout(stalled);
      if (performance.now() >= endAt) {
        load.onFrontier = undefined;
        resolve();
        return;
      }
      while (seq.n - load.frontier < window) send();
      stalled = setTimeout(() => {
        send();
        pump();
      }, 250);
    };
    load.onFrontier = pump;
    pump();
  });
}

export async function phase(target: PhaseTarget, name: string, drive: Drive, seconds: number): Promise<PhaseResult> {
  const { running, load, publisher, channel, subscribers, seq } = target;
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
  if ('rate' in drive) await driveAtRate(send, drive.rate, started, endAt);
  else await driveInWindow(target, send, drive.window, endAt);
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
