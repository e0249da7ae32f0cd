import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DurableBroker } from '../../src/brokers/durable.js';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { KometaError } from '../../src/core/errors.js';
import { Hub } from '../../src/core/hub.js';
import type { Sink } from '../../src/core/sink.js';
import { streamEncoder } from '../../src/transports/stream.js';

/*
 * Hub.publishNow, the promise-free publish of the memory broker: the same
 * message, ids, history, member count, delivery and errors as `publish`, and
 * no answer at all (undefined, nothing stored) where the broker must wait.
 */

function recordingSink(): Sink & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    encoder: streamEncoder,
    push: (_frames, _cursor, messages) => log.push(...messages.map((m) => m.data)),
    gap: () => {},
    live: () => {},
    end: () => {},
  };
}

test('publishNow in memory numbers, keeps, counts and delivers like publish, in one order', async (t) => {
  const hub = new Hub(new MemoryBroker());
  t.after(() => hub.close());
  const subscription = await hub.subscribe(['room'], null, { client: 'c1', user: null, info: null, transport: 'sse' });
  const sink = recordingSink();
  subscription.start(sink);
  const first = hub.publishNow('room', 'one');
  assert.ok(first !== undefined, 'the memory broker publishes without a promise');
  const second = await hub.publish('room', 'two');
  const third = hub.publishNow('room', 'three', { event: 'note' })!;
  assert.deepEqual([first.message.seq, second.message.seq, third.message.seq], [1, 2, 3]);
  assert.equal(first.subscribers, 1, 'the member count is there at once');
  assert.equal(third.message.event, 'note');
  const history = await hub.broker.read('room', 0);
  assert.deepEqual(
    history.messages.map((m) => m.id),
    [first.message.id, second.message.id, third.message.id],
  );
  hub.flush();
  assert.deepEqual(sink.log, ['one', 'two', 'three']);
});

test('publishNow refuses what publish refuses, with the same codes, and stores nothing', async (t) => {
  const hub = new Hub(new MemoryBroker());
  t.after(() => hub.close());
  const code = (run: () => unknown) => {
    try {
      run();
    } catch (error) {
      return error instanceof KometaError ? error.code : 'other';
    }
    return 'none';
  };
  assert.equal(code(() => hub.publishNow('bad name', 'x')), 'KOMETA_ERR_CHANNEL_NAME');
  assert.equal(code(() => hub.publishNow('room', 'x', { event: 'kometa-gap' })), 'KOMETA_ERR_EVENT_NAME');
  assert.equal(code(() => hub.publishNow('room', 'x', { exclude: 'no spaces' })), 'KOMETA_ERR_EXCLUDE_CLIENT');
  assert.equal(code(() => hub.publishNow('room', '\ud800')), 'KOMETA_ERR_BODY_ENCODING');
  const tooLarge = 'x'.repeat(hub.limits.maxMessageBytes + 1);
  assert.equal(code(() => hub.publishNow('room', tooLarge)), 'KOMETA_ERR_BODY_TOO_LARGE');
  assert.equal((await hub.broker.head('room')).seq, 0, 'nothing was stored');
});

test('publishNow answers undefined where the broker must wait (on disk), and publish still works', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kometa-publish-now-'));
  const broker = await DurableBroker.open({ dir });
  const hub = new Hub(broker);
  t.after(async () => {
    hub.close();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(hub.publishNow('room', 'x'), undefined);
  assert.equal((await broker.head('room')).seq, 0, 'nothing was stored by the refusal');
  const published = await hub.publish('room', 'x');
  assert.equal(published.message.seq, 1);
});
