import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DurableBroker } from '../../src/brokers/durable.js';
import { MemoryBroker } from '../../src/brokers/memory.js';
import type { Broker } from '../../src/core/broker.js';
import { parseCursor } from '../../src/core/cursor.js';
import { Hub } from '../../src/core/hub.js';
import type { GapNotice } from '../../src/core/message.js';
import type { Sink } from '../../src/core/sink.js';
import { streamEncoder } from '../../src/transports/stream.js';

/*
 * "Exclude the sender" in the core, on both embedded engines: a publish that
 * names a client id skips that client's live subscribers only; history keeps
 * the message for everyone, so a resuming client gets it like any other.
 */

function recordingSink(): Sink & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    encoder: streamEncoder,
    push: (_frames, _cursor, messages) => log.push(...messages.map((m) => m.data)),
    gap: (notice: GapNotice) => log.push(`gap ${notice.reason}`),
    live: () => {},
    end: () => {},
  };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

async function engines(t: { after: (fn: () => void | Promise<void>) => void }): Promise<[string, Broker][]> {
  const dir = mkdtempSync(join(tmpdir(), 'kometa-exclude-'));
  const durable = await DurableBroker.open({ dir });
  t.after(async () => {
    await durable.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return [
    ['memory', new MemoryBroker()],
    ['durable', durable],
  ];
}

async function subscriber(hub: Hub, client: string | undefined, channels = ['room']) {
  const subscription = await hub.subscribe(channels, null);
  subscription.client = client;
  const sink = recordingSink();
  subscription.start(sink);
  return sink;
}

test('a publish that excludes a client skips its subscribers only; the next message reaches both', async (t) => {
  for (const [name, broker] of await engines(t)) {
    const hub = new Hub(broker);
    const alice = await subscriber(hub, 'alice');
    const bob = await subscriber(hub, 'bob');
    const anonymous = await subscriber(hub, undefined);
    const first = await hub.publish('room', 'from alice', { exclude: 'alice' });
    assert.equal(first.subscribers, 3, `${name}: the answer counts the channel's subscribers`);
    await settle();
    await hub.publish('room', 'to all');
    await settle();
    assert.deepEqual(alice.log, ['to all'], name);
    assert.deepEqual(bob.log, ['from alice', 'to all'], name);
    assert.deepEqual(anonymous.log, ['from alice', 'to all'], name);
  }
});

test('within one fan-out of several messages, each member skips only what excludes it, in order', async (t) => {
  for (const [name, broker] of await engines(t)) {
    const hub = new Hub(broker);
    const alice = await subscriber(hub, 'alice');
    const bob = await subscriber(hub, 'bob');
    // Published in one turn: the hub fans them out together.
    await Promise.all([
      hub.publish('room', 'a1'),
      hub.publish('room', 'a2', { exclude: 'alice' }),
      hub.publish('room', 'a3', { exclude: 'bob' }),
      hub.publish('room', 'a4'),
    ]);
    await settle();
    assert.deepEqual(alice.log, ['a1', 'a3', 'a4'], name);
    assert.deepEqual(bob.log, ['a1', 'a2', 'a4'], name);
  }
});

test('a multi-channel subscriber of the excluded client skips the message on that channel only', async (t) => {
  for (const [name, broker] of await engines(t)) {
    const hub = new Hub(broker);
    const alice = await subscriber(hub, 'alice', ['room', 'other']);
    await hub.publish('room', 'r1', { exclude: 'alice' });
    await hub.publish('other', 'o1');
    await settle();
    assert.deepEqual(alice.log, ['o1'], name);
  }
});

test('history keeps an excluded message for everyone: the sender resuming from before it gets it', async (t) => {
  for (const [name, broker] of await engines(t)) {
    const hub = new Hub(broker);
    const before = await hub.publish('room', 'm1');
    await hub.publish('room', 'm2', { exclude: 'alice' });
    const resumed = await hub.subscribe(['room'], parseCursor(before.message.id));
    resumed.client = 'alice';
    const sink = recordingSink();
    resumed.start(sink);
    await settle();
    assert.deepEqual(sink.log, ['m2'], name);
    const read = await broker.read('room', 0);
    assert.ok(read.messages.every((m) => m.exclude === undefined), `${name}: nothing excluded is stored`);
  }
});

test('an exclude that is not a client id is refused before anything is stored', async () => {
  const broker = new MemoryBroker();
  const hub = new Hub(broker);
  for (const bad of ['', 'has space', 'x'.repeat(65), 'new\nline']) {
    await assert.rejects(hub.publish('room', 'x', { exclude: bad }), { code: 'KOMETA_ERR_EXCLUDE_CLIENT' });
  }
  assert.equal((await broker.head('room')).seq, 0);
});
