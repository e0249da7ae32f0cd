/*
 * presence, part 1: the same fan-out (one channel, plain SSE subscribers who
 * did not ask for joins and leaves) against kometa with presence off, on,
 * and with --presence-events. Rounds go over the three servers in turn, each
 * round in another order, so a noisy minute on the shared machine hits all
 * of them alike; the ratios to presence off are of medians from this run.
 */
import { type Bench, log, median } from '../lib/bench.js';
import { Load } from '../lib/load.js';
import { type PhaseResult, phase } from '../lib/phase.js';
import { Publisher } from '../lib/publisher.js';
import { type System, presenceSystems } from '../lib/systems.js';

/** Closed-loop phases per server start (after a warm-up). */
const PHASES_PER_START = 2;

export interface PresenceFanoutRow {
  readonly part: 'fanout';
  readonly system: string;
  readonly subscribers: number;
  /** CPU-s per million deliveries of every phase, in the order measured. */
  readonly cpuSecPerMillion: number[];
  readonly median: { cpuSecPerMillion: number; deliveriesPerSec: number; p99Ms: number; lost: number };
  readonly ratioToOff: number;
}

export async function presenceFanout(bench: Bench, counts: number[], rounds: number): Promise<PresenceFanoutRow[]> {
  const { off, on, events } = presenceSystems();
  const systems = [off, on, events];
  const phases = new Map<string, PhaseResult[]>();
  for (let round = 0; round < rounds; round++) {
    // Rotate the order: the first server of a round is never always the same one.
    const order = [...systems.slice(round % 3), ...systems.slice(0, round % 3)];
    for (const count of counts) {
      for (const system of order) {
        const key = `${count} ${system.name}`;
        await bench.attempt(system, `presence fanout ${key}`, async () => {
          phases.set(key, [...(phases.get(key) ?? []), ...(await fanoutOnce(bench, system, count, round))]);
        });
      }
    }
  }
  const rows: PresenceFanoutRow[] = [];
  for (const count of counts) {
    const offMedian = median((phases.get(`${count} ${off.name}`) ?? []).map((p) => p.cpuSecPerMillion));
    for (const system of systems) {
      const list = phases.get(`${count} ${system.name}`) ?? [];
      if (list.length === 0) continue;
      const cpu = median(list.map((p) => p.cpuSecPerMillion));
      rows.push({
        part: 'fanout',
        system: system.name,
        subscribers: count,
        cpuSecPerMillion: list.map((p) => p.cpuSecPerMillion),
        median: {
          cpuSecPerMillion: cpu,
          deliveriesPerSec: median(list.map((p) => p.deliveriesPerSec)),
          p99Ms: median(list.map((p) => p.p99Ms)),
          lost: list.reduce((a, p) => a + p.lost, 0),
        },
        ratioToOff: Math.round((cpu / offMedian) * 100) / 100,
      });
    }
  }
  return rows;
}

async function fanoutOnce(bench: Bench, system: System, count: number, round: number): Promise<PhaseResult[]> {
  const running = await bench.startSystem(system);
  const publisher = new Publisher('127.0.0.1', running.publish, 1, 16);
  let opened: Awaited<ReturnType<typeof Load.open>> | undefined;
  try {
    const spec = system.transports.sse!;
    // Generous: connecting 10,000 takes far longer than usual on the shared machine.
    const open = { channel: 'fan', perSocketChannel: false, frontier: true, timeoutMs: 120_000 };
    opened = await Load.open(bench, running, spec, count, open);
    if (opened.failed > 0) throw new Error(`${opened.failed} of ${count} subscribers failed to connect`);
    const target = { running, load: opened.load, publisher, channel: 'fan', subscribers: opened.ready, seq: { n: 0 } };
    await phase(target, 'warm-up', { window: 1 }, bench.config.quick ? 1 : 2);
    const results: PhaseResult[] = [];
    for (let p = 0; p < PHASES_PER_START; p++) {
      const result = await phase(target, `round ${round + 1} max#${p + 1}`, { window: 4 }, bench.config.maxSeconds);
      log(
        `presence fanout ${count} ${system.name} ${result.phase}: ${result.deliveriesPerSec} deliveries/s, ` +
          `${result.cpuSecPerMillion} CPU-s/M, p99 ${result.p99Ms} ms, lost ${result.lost}, ` +
          `server ${result.serverCpuPct}% load ${result.loadCpuPct}%`,
      );
      results.push(result);
    }
    return results;
  } finally {
    publisher.close();
    await opened?.load.close();
    await running.stop();
  }
}
