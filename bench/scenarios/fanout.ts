/*
 * fanout: N subscribers on one channel; publish as fast as the slowest keeps
 * up (closed loop, `repeat` times: deliveries per second and CPU-seconds per
 * million deliveries), then at fixed rates (latency). With `profile`, one
 * longer closed-loop phase under --cpu-prof instead.
 */
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { type Bench, log, median } from '../lib/bench.js';
import { Load } from '../lib/load.js';
import { type PhaseResult, type PhaseTarget, phase } from '../lib/phase.js';
import { Publisher } from '../lib/publisher.js';
import type { System } from '../lib/systems.js';
import { keepProfile, nowUs } from './profile-files.js';

export interface ProfileOption {
  readonly profile?: boolean;
}

export async function fanout(bench: Bench, list: System[], counts: number[], options: ProfileOption = {}) {
  for (const count of counts) {
    for (const system of list) {
      if (!bench.available(system, 'fanout')) continue;
      await bench.attempt(system, `fanout ${count}`, () => fanoutOne(bench, system, count, options));
    }
  }
}

async function fanoutOne(bench: Bench, system: System, count: number, options: ProfileOption): Promise<void> {
  const spec = system.transports[system.fanout]!;
  const profDir = options.profile ? mkdtempSync(join(bench.tmp, 'prof-')) : undefined;
  const running = await bench.startSystem(system, profDir);
  // One pipelined connection: the channel's messages reach the server in order.
  const publisher = new Publisher('127.0.0.1', running.publish, 1, 16);
  let opened: Awaited<ReturnType<typeof Load.open>> | undefined;
  try {
    opened = await Load.open(bench, running, spec, count, { channel: 'fan', perSocketChannel: false, frontier: true });
    const { load } = opened;
    log(
      `fanout ${count} ${system.name}: ${opened.ready} subscribers in ${Math.round(opened.ms)} ms ` +
        `(${opened.failed} failed)`,
    );
    const target: PhaseTarget = { running, load, publisher, channel: 'fan', subscribers: opened.ready, seq: { n: 0 } };
    const phases = await measure(bench, target, count, `fanout ${count} ${system.name}`, options);
    const maxPhases = phases.filter((p) => p.phase.startsWith('max'));
    bench.results[options.profile ? 'profile' : 'fanout']!.push({
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
  if (profDir !== undefined) keepProfile(bench, profDir, system, `fanout-${count}`);
}

/** Warm-up, the closed-loop phases, then the fixed rates of this size (stopping once latency or loss says enough). */
async function measure(bench: Bench, target: PhaseTarget, count: number, label: string, options: ProfileOption) {
  const { config } = bench;
  // Warm-up: the first messages reach everyone (and JITs warm up).
  await phase(target, 'warm-up', { window: 1 }, config.quick ? 1 : 2);
  const phases: PhaseResult[] = [];
  for (let r = 0; r < (options.profile ? 1 : config.repeat); r++) {
    const windowStart = nowUs();
    const seconds = options.profile ? 10 : config.maxSeconds;
    const result = await phase(target, `max#${r + 1}`, { window: 4 }, seconds);
    bench.profileWindow = [windowStart, nowUs()];
    phases.push(result);
    log(
      `${label} ${result.phase}: ${result.deliveriesPerSec} deliveries/s, ${result.cpuSecPerMillion} CPU-s/M, ` +
        `p99 ${result.p99Ms} ms, lost ${result.lost}, server ${result.serverCpuPct}% load ${result.loadCpuPct}%`,
    );
  }
  if (options.profile) return phases;
  for (const rate of config.fixed[count] ?? []) {
    const result = await phase(target, `rate ${rate}/s`, { rate }, config.fixedSeconds);
    phases.push(result);
    log(
      `${label} ${rate} msg/s: p50 ${result.p50Ms} p99 ${result.p99Ms} max ${result.maxMs} ms, lost ${result.lost}, ` +
        `${result.cpuSecPerMillion} CPU-s/M, server ${result.serverCpuPct}% load ${result.loadCpuPct}%`,
    );
    if (result.p99Ms >= 250 || result.lost > 0) break; // higher rates only get worse
  }
  return phases;
}
