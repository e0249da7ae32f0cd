/*
 * idle: N subscribers connect to one channel and wait; server memory per
 * subscriber and the time to connect them all, per system and transport.
 */
import { type Bench, log, sleep } from '../lib/bench.js';
import { Load } from '../lib/load.js';
import { sampleTree } from '../lib/procs.js';
import type { Running, SubscriberSpec, System } from '../lib/systems.js';

export async function idle(bench: Bench): Promise<void> {
  for (const count of bench.config.idle) {
    for (const system of bench.systems) {
      if (system.name.endsWith('-ws') || !bench.available(system, 'idle')) continue;
      for (const [transport, spec] of Object.entries(system.transports)) {
        await bench.attempt(system, `idle ${count} ${transport}`, () => idleOne(bench, system, transport, spec, count));
      }
    }
  }
}

async function idleOne(bench: Bench, system: System, transport: string, spec: SubscriberSpec, count: number) {
  const running = await bench.startSystem(system);
  try {
    await sleep(1000);
    const base = sampleTree(running.pid);
    const opened = await Load.open(bench, running, spec, count, { channel: 'idle', perSocketChannel: false });
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
    bench.results.idle!.push(row);
    log(
      `idle ${count} ${system.name}/${transport}: ${row.ready} ready (${row.failed} failed) ` +
        `in ${row.connectMs} ms, ${row.kibPerSubscriber} KiB each`,
    );
    await opened.load.close();
  } finally {
    await running.stop();
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
