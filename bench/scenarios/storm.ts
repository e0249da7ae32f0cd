/*
 * storm: N SSE subscribers follow one channel, all drop at once, messages are
 * published while they are away, and all reconnect with Last-Event-ID: how
 * long until every one has caught up, and whether any message was lost or
 * delivered twice.
 */
import { type Bench, MESSAGE_BYTES, log, sleep } from '../lib/bench.js';
import { Load } from '../lib/load.js';
import { phase } from '../lib/phase.js';
import { sampleTree } from '../lib/procs.js';
import { messageData } from '../lib/protocol.js';
import { Publisher } from '../lib/publisher.js';
import type { SubscriberSpec, System } from '../lib/systems.js';

export async function storm(bench: Bench): Promise<void> {
  for (const system of bench.systems) {
    if (!bench.available(system, 'storm')) continue;
    const sse = system.transports.sse;
    if (!system.resume || sse === undefined) {
      log(`storm ${system.name}: skipped (no resume from Last-Event-ID)`);
      bench.skipped.push({ system: system.name, scenario: 'storm', reason: 'no resume from Last-Event-ID' });
      continue;
    }
    await bench.attempt(system, 'storm', () => stormOne(bench, system, sse));
  }
}

async function stormOne(bench: Bench, system: System, sse: SubscriberSpec): Promise<void> {
  const count = bench.config.storm;
  const messages = bench.config.stormMessages;
  const running = await bench.startSystem(system);
  const publisher = new Publisher('127.0.0.1', running.publish, 1, 16);
  let opened: Awaited<ReturnType<typeof Load.open>> | undefined;
  try {
    const options = { channel: 'storm', perSocketChannel: false, trackIds: true, frontier: true };
    opened = await Load.open(bench, running, sse, count, options);
    const { load } = opened;
    const seq = { n: 0 };
    const target = { running, load, publisher, channel: 'storm', subscribers: opened.ready, seq };
    await phase(target, 'live', { window: 1 }, 1);
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
    bench.results.storm!.push(row);
    log(
      `storm ${count} ${system.name}: ${row.caughtUp}/${count} caught up in ${row.allCaughtUpMs} ms ` +
        `(reconnects took ${row.reconnectMs} ms), replayed ${row.replayed}/${expected}, lost ${row.lost}, ` +
        `duplicates ${row.duplicates}`,
    );
  } finally {
    publisher.close();
    await opened?.load.close();
    await running.stop();
  }
}
