import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { connect } from 'node:net';
import { test } from 'node:test';
import { BurstWatch } from '../../src/cli/reclaim.js';
import type { SubscriberDropEvent } from '../../src/core/diagnostics.js';
import { startHub } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

/*
 * A burst with one stuck reader: what the hub holds for it is bounded by the
 * queue cap, the reader that reads gets everything, and once the burst gives
 * way to quiet the CLI collects its garbage once (the memory figures
 * themselves are measured by bench/memory-stuck-reader.ts, not here).
 */
const MESSAGE = 'x'.repeat(10 * 1024);
const QUEUE = 256 * 1024;

test('a stuck reader is cut at the queue cap while the reader next to it gets every message', async () => {
  const hub = await startHub({ http: { maxQueueBytes: QUEUE, publishRate: 0 } });
  const drops: SubscriberDropEvent[] = [];
  const onDrop = (event: unknown) => drops.push(event as SubscriberDropEvent);
  subscribe('kometa:subscriber:drop', onDrop);
  const stuck = connect(hub.port, '127.0.0.1');
  stuck.on('error', () => {});
  stuck.pause();
  try {
    stuck.write('GET /sub/burst?transport=stream HTTP/1.1\r\nHost: x\r\n\r\n');
    const reader = await StreamReader.open(`${hub.url}/sub/burst?transport=stream`);
    while (hub.hub.subscriberCount('burst') < 2) await new Promise((r) => setTimeout(r, 5));
    // Enough to fill the kernel's buffers on both ends and then the queue.
    const count = 2000;
    for (let i = 0; i < count; i++) {
      await hub.hub.publish('burst', `${i} ${MESSAGE}`);
      // One fan-out (one write per subscriber) per message, as separate HTTP publishes would give.
      await new Promise((r) => setImmediate(r));
    }
    await reader.waitFor((r) => r.json().filter((l) => l.type === 'message').length === count, 20_000, 'every message at the reader');
    const seen = reader.json<{ type: string; data?: string }>().filter((l) => l.type === 'message').map((l) => Number(l.data!.split(' ')[0]));
    assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i), 'in order, none missing');
    assert.equal(drops.length, 1, 'the stuck reader was cut');
    assert.equal(drops[0]!.reason, 'slow-consumer');
    // The cap is checked after each write: at most one frame past it.
    assert.ok(drops[0]!.queuedBytes <= QUEUE + MESSAGE.length + 1024, `queued ${drops[0]!.queuedBytes}`);
    assert.equal(hub.hub.subscriberCount('burst'), 1);
    reader.close();
  } finally {
    unsubscribe('kometa:subscriber:drop', onDrop);
    stuck.destroy();
    await hub.close();
  }
});

test('the CLI collects once when a burst gives way to quiet, never during one or for a trickle', () => {
  const MiB = 1024 * 1024;
  const watch = new BurstWatch(0, { burstBytes: 8 * MiB, quietBytes: 64 * 1024 });
  let total = 0;
  const look = (bytes: number) => watch.look((total += bytes));
  assert.equal(look(1 * MiB), false, 'a trickle is not a burst');
  assert.equal(look(10 * 1024), false, 'quiet without a burst before it');
  assert.equal(look(20 * MiB), false, 'during the burst');
  assert.equal(look(9 * MiB), false, 'still bursting');
  assert.equal(look(1 * MiB), false, 'slower, but not quiet');
  assert.equal(look(0), true, 'quiet after the burst: collect');
  assert.equal(look(0), false, 'once per burst');
  assert.equal(look(30 * MiB), false);
  assert.equal(look(1024), true, 'the next burst, the next collection');
});
