/*
 * channels: N subscribers, each on a channel of its own; one message to each
 * channel (in batches where the system takes them), until all are delivered.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { type Bench, MESSAGE_BYTES, log, sleep } from '../lib/bench.js';
import { Load, latencyStats } from '../lib/load.js';
import { sampleTree } from '../lib/procs.js';
import { messageData } from '../lib/protocol.js';
import { Publisher } from '../lib/publisher.js';
import type { Running, System } from '../lib/systems.js';
import type { ProfileOption } from './fanout.js';
import { keepProfile, nowUs } from './profile-files.js';

export async function channels(bench: Bench, list: System[], count: number, options: ProfileOption = {}) {
  for (const system of list) {
    if (!bench.available(system, 'channels')) continue;
    await bench.attempt(system, 'channels', () => channelsOne(bench, system, count, options));
  }
}

/**
 * The round (one message to every channel) is run once, not counted, then
 * MEASURED_ROUNDS times in the same process, counted together. A fresh
 * process pays for compiling its code (V8's JIT compiles a Node server's
 * hot functions, throws some away when a new shape turns up and compiles
 * them again, over its first thousands of requests); what is compared is
 * the cost of a delivery in a running server, for every system alike. And
 * one-off events of a process's life fall in some round: kometa's batch route
 * compiled a second time (about 80 ms) in the second round, its heap's first
 * full collection after 10k subscribers connect (about 200 ms) in the third.
 * Counting three rounds together spreads them as a running server does,
 * instead of a single round taking or missing them (docs/benchmarks.md).
 */
export const WARM_UP_ROUNDS = 1;
export const MEASURED_ROUNDS = 3;

async function channelsOne(bench: Bench, system: System, count: number, options: ProfileOption): Promise<void> {
  const spec = system.transports[system.fanout]!;
  const profDir = options.profile ? mkdtempSync(join(bench.tmp, 'prof-')) : undefined;
  const running = await bench.startSystem(system, profDir);
  const publisher = new Publisher('127.0.0.1', running.publish);
  let opened: Awaited<ReturnType<typeof Load.open>> | undefined;
  try {
    // Connecting 10k subscribers on a busy shared machine can take longer than the default allows.
    const timeoutMs = 60_000 + 2 * count;
    opened = await Load.open(bench, running, spec, count, { channel: 'm', perSocketChannel: true, timeoutMs });
    const { load } = opened;
    await sleep(1000);
    // The first round's own figure is kept (`coldCpuSecPerMillion`); a profile runs the measured rounds only.
    const expected = system.delivers === false ? 0 : opened.ready;
    const warmUps = options.profile ? 0 : WARM_UP_ROUNDS;
    const cold = warmUps === 0 ? undefined : await phase(load, running, publisher, count, expected, 1, warmUps);
    await load.reset();
    const windowStart = nowUs();
    const warm = await phase(load, running, publisher, count, expected, warmUps + 1, MEASURED_ROUNDS);
    bench.profileWindow = [windowStart, nowUs()];
    // Without subscribers (`-nosub`) the cost is per published message: the same count, none delivered.
    const perMillion = (p: Phase) =>
      Math.round(
        (p.cpu / (system.delivers === false ? count * p.rounds : Math.max(1, p.report.unique))) * 1e6 * 100,
      ) / 100;
    const { report } = warm;
    const row = {
      system: system.name,
      transport: system.fanout,
      subscribers: count,
      ready: opened.ready,
      notConnected: count - opened.ready,
      /** Every error met while connecting, retried ones included (`ECONNRESET`, `HTTP 503` …). */
      connectErrors: opened.errorCodes,
      publishMs: Math.round(warm.publishedMs),
      allDeliveredMs: Math.round(warm.doneMs),
      delivered: report.unique,
      /** Messages due to connected subscribers that did not reach them (closed on the way, or lost). */
      lost: expected * MEASURED_ROUNDS - Math.min(expected * MEASURED_ROUNDS, report.unique),
      /** Connected subscribers whose connection closed during the phase. */
      closed: report.closed,
      publishFailed: publisher.failed,
      ...latencyStats(report),
      serverCpuSec: Math.round(warm.cpu * 100) / 100,
      cpuSecPerMillion: perMillion(warm),
      measuredRounds: MEASURED_ROUNDS,
      /** The warm-up round's figure: the same work in a fresh process, JIT compilation included. */
      coldCpuSecPerMillion: cold === undefined ? null : perMillion(cold),
    };
    bench.results[options.profile ? 'profile' : 'channels']!.push({ scenario: 'channels', ...row });
    log(
      `channels ${count} ${system.name}: all delivered in ${row.allDeliveredMs} ms, lost ${row.lost}, ` +
        `not connected ${row.notConnected}, closed ${row.closed}, publish failed ${row.publishFailed}, ` +
        `p99 ${row.p99Ms} ms, ${row.cpuSecPerMillion} CPU-s/M (warm-up round ${row.coldCpuSecPerMillion})`,
    );
  } finally {
    publisher.close();
    await opened?.load.close();
    await running.stop();
  }
  if (profDir !== undefined) keepProfile(bench, profDir, system, `channels-${count}`);
}

interface Phase {
  readonly cpu: number;
  readonly rounds: number;
  /** The last round's: until every message was answered, and until every subscriber had it. */
  readonly publishedMs: number;
  readonly doneMs: number;
  readonly report: Awaited<ReturnType<Load['report']>>;
}

/**
 * `rounds` rounds from message `firstSeq` on: each publishes its message to
 * every channel, then waits until the connected subscribers have it (15 s at
 * most). `report` counts every round since the last reset.
 */
async function phase(
  load: Load,
  running: Running,
  publisher: Publisher,
  count: number,
  expected: number,
  firstSeq: number,
  rounds: number,
): Promise<Phase> {
  const before = sampleTree(running.pid);
  let publishedMs = 0;
  let doneMs = 0;
  let report = await load.report();
  const reached = report.unique;
  for (let round = 0; round < rounds; round++) {
    const roundStarted = performance.now();
    publishEach(publisher, running, count, firstSeq + round);
    await publisher.idle();
    publishedMs = performance.now() - roundStarted;
    // Subscribers that never connected cannot receive: wait for the connected ones, and report the rest apart.
    const due = reached + expected * (round + 1);
    const deadline = performance.now() + 15_000;
    report = await load.report();
    while (report.unique < due && performance.now() < deadline) {
      await sleep(50);
      report = await load.report();
    }
    doneMs = performance.now() - roundStarted;
  }
  return { cpu: sampleTree(running.pid).cpuSec - before.cpuSec, rounds, publishedMs, doneMs, report };
}

/** One message to each of `count` channels: one request each, or batches of 100 where the system takes them. */
function publishEach(publisher: Publisher, running: Running, count: number, seq: number): void {
  const batch = running.publish.batch;
  if (batch === undefined) {
    for (let i = 0; i < count; i++) publisher.publish(`m${i}`, messageData(seq, MESSAGE_BYTES));
    return;
  }
  for (let start = 0; start < count; start += 100) {
    const items = [];
    for (let i = start; i < Math.min(count, start + 100); i++) {
      items.push({ channel: `m${i}`, data: messageData(seq, MESSAGE_BYTES) });
    }
    publisher.publishRequest(batch(items));
  }
}
