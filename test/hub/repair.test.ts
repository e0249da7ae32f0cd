import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryBroker } from '../../src/brokers/memory.js';
import type { Broker } from '../../src/core/broker.js';
import { Hub } from '../../src/core/hub.js';
import type { GapNotice, HistoryRead, Message } from '../../src/core/message.js';
import type { Sink } from '../../src/core/sink.js';
import { streamEncoder } from '../../src/transports/stream.js';

/** A broker whose fan-out drops chosen messages, and whose history may have lost them too. */
class LossyBroker extends MemoryBroker implements Broker {
  dropLive = new Set<number>();
  lostFromHistory = new Set<number>();
  override setListener(listener: (message: Message) => void): void {
    super.setListener((message) => {
      if (!this.dropLive.has(message.seq)) listener(message);
    });
  }
  override async read(channel: string, afterSeq: number): Promise<HistoryRead> {
    const read = await super.read(channel, afterSeq);
    return { ...read, messages: read.messages.filter((m) => !this.lostFromHistory.has(m.seq)) };
  }
}

function recordingSink(): Sink & { log: string[] } {
  const log: string[] = [];
  return {
    log,
    encoder: streamEncoder,
    push: (_frames, _cursor, messages) => log.push(...messages.map((m) => `m${m.seq}`)),
    gap: (notice: GapNotice) => log.push(`gap ${notice.missed?.from}-${notice.missed?.to}`),
    live: () => {},
    end: () => {},
  };
}

const settle = () => new Promise((r) => setTimeout(r, 20));

test('a message the broker failed to fan out is fetched from history, in order', async () => {
  const broker = new LossyBroker();
  const hub = new Hub(broker);
  const sink = recordingSink();
  (await hub.subscribe(['c'], null)).start(sink);
  broker.dropLive.add(2);
  for (let i = 0; i < 4; i++) await hub.publish('c', `x${i}`);
  await settle();
  assert.deepEqual(sink.log, ['m1', 'm2', 'm3', 'm4']);
});

test('a hole that history cannot fill either becomes a gap notice, never a silent skip', async () => {
  const broker = new LossyBroker();
  const hub = new Hub(broker);
  const live = recordingSink();
  (await hub.subscribe(['c'], null)).start(live);
  broker.dropLive.add(2);
  broker.lostFromHistory.add(2);
  for (let i = 0; i < 4; i++) await hub.publish('c', `x${i}`);
  await settle();
  assert.deepEqual(live.log, ['m1', 'gap 2-2', 'm3', 'm4']);
  assert.equal(hub.counters.gaps, 1);
});

test('a message the broker hands on twice in one turn (pub/sub and a catch-up) is delivered once', async () => {
  class EchoingBroker extends MemoryBroker implements Broker {
    echo = false;
    override setListener(listener: (message: Message) => void): void {
      super.setListener((message) => {
        listener(message);
        if (this.echo) listener(message);
      });
    }
  }
  const broker = new EchoingBroker();
  const hub = new Hub(broker);
  const sink = recordingSink();
  (await hub.subscribe(['c'], null)).start(sink);
  await hub.publish('c', 'x1');
  await settle();
  broker.echo = true;
  await hub.publish('c', 'x2');
  await hub.publish('c', 'x3');
  await settle();
  assert.deepEqual(sink.log, ['m1', 'm2', 'm3']);
});
