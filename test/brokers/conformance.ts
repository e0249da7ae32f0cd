import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Broker } from '../../src/core/broker.js';
import type { Clock } from '../../src/core/clock.js';
import type { HistoryLimits } from '../../src/core/history.js';
import type { Message } from '../../src/core/message.js';

export interface BrokerSetup {
  readonly history?: Partial<HistoryLimits>;
  readonly clock?: Clock;
  readonly maxTotalBytes?: number;
}

type After = { after(fn: () => Promise<void> | void): void };

/** How to make one kind of broker for the suite. */
export interface BrokerFixture {
  readonly name: string;
  /** A broker on a store of its own, closed after the test. */
  make(t: After, setup?: BrokerSetup): Promise<Broker>;
  /** `count` brokers on one shared store, as several processes would have (default: the same broker `count` times). */
  shared?(t: After, count: number): Promise<Broker[]>;
  /** Whether the engine bounds history across channels (maxTotalBytes). */
  readonly boundsTotal: boolean;
}

/**
 * What every engine behind the core's Broker interface promises, run against
 * each of them (memory, durable, Redis): positions, history bounds, gaps,
 * epochs, one total order under concurrent publishers, delivery to the
 * listener, single-use claims.
 */
export function brokerConformance(fixture: BrokerFixture): void {
  const name = (what: string) => `${fixture.name} broker: ${what}`;

  test(name('publish numbers messages 1, 2, 3 in one epoch, and read, head and stats agree'), async (t) => {
    const b = await fixture.make(t);
    const first = await b.publish('news', 'héllo\nworld');
    const second = await b.publish('news', '{"a":1}', { event: 'update' });
    assert.deepEqual([first.seq, second.seq], [1, 2]);
    assert.equal(first.epoch, second.epoch);
    assert.match(first.epoch, /^[A-Za-z0-9]{1,32}$/);
    assert.equal(first.id, `news~${first.epoch}~1`);
    assert.equal(first.size, Buffer.byteLength('héllo\nworld'));
    assert.equal(first.event, undefined);
    assert.equal(second.event, 'update');
    assert.ok(Math.abs(first.time - Date.now()) < 60_000, 'stamped with the time');
    assert.deepEqual(await b.head('news'), { epoch: first.epoch, seq: 2 });
    const all = await b.read('news', 0);
    assert.deepEqual([all.epoch, all.headSeq, all.oldestSeq], [first.epoch, 2, 1]);
    assert.deepEqual(
      all.messages.map((m) => [m.seq, m.data, m.event, m.id, m.size]),
      [
        [1, 'héllo\nworld', undefined, first.id, first.size],
        [2, '{"a":1}', 'update', second.id, second.size],
      ],
    );
    assert.deepEqual(
      (await b.read('news', 1)).messages.map((m) => m.seq),
      [2],
    );
    assert.deepEqual((await b.read('news', 2)).messages, []);
    assert.deepEqual(await b.stats('news'), {
      epoch: first.epoch,
      headSeq: 2,
      oldestSeq: 1,
      messages: 2,
      bytes: first.size + second.size,
    });
  });

  test(name('a channel nobody published to has one epoch from head and read alike, and no history'), async (t) => {
    const b = await fixture.make(t);
    const head = await b.head('fresh');
    assert.equal(head.seq, 0);
    assert.deepEqual(await b.read('fresh', 0), { epoch: head.epoch, messages: [], oldestSeq: 1, headSeq: 0 });
    const first = await b.publish('fresh', 'one');
    assert.equal(first.epoch, head.epoch, 'a subscriber that came before the first message resumes without a gap');
    assert.equal(first.seq, 1);
  });

  test(name('channels are numbered apart and never see each other’s messages'), async (t) => {
    const b = await fixture.make(t);
    await b.publish('a', 'a1');
    await b.publish('b', 'b1');
    await b.publish('a', 'a2');
    assert.deepEqual(
      (await b.read('a', 0)).messages.map((m) => m.data),
      ['a1', 'a2'],
    );
    assert.deepEqual(
      (await b.read('b', 0)).messages.map((m) => [m.seq, m.data]),
      [[1, 'b1']],
    );
  });

  test(name('history is bounded by count, keeping the newest; an old cursor gets what is left'), async (t) => {
    const b = await fixture.make(t, { history: { maxMessages: 5 } });
    for (let i = 1; i <= 12; i++) await b.publish('c', `m${i}`);
    const read = await b.read('c', 0);
    assert.deepEqual(
      read.messages.map((m) => m.seq),
      [8, 9, 10, 11, 12],
    );
    assert.deepEqual([read.oldestSeq, read.headSeq], [8, 12]);
    assert.deepEqual(
      (await b.read('c', 3)).messages.map((m) => m.seq),
      [8, 9, 10, 11, 12],
    );
    const stats = await b.stats('c');
    assert.equal(stats.messages, 5);
    assert.equal(stats.bytes, 2 * 2 + 3 * 3);
  });

  test(name('history is bounded by bytes of data; one message over the limit takes the rest with it'), async (t) => {
    const b = await fixture.make(t, { history: { maxBytes: 25 } });
    for (let i = 1; i <= 6; i++) await b.publish('c', 'x'.repeat(10));
    const stats = await b.stats('c');
    assert.deepEqual([stats.messages, stats.bytes, stats.oldestSeq], [2, 20, 5]);
    await b.publish('c', 'y'.repeat(30));
    const read = await b.read('c', 0);
    assert.deepEqual(read.messages, []);
    assert.deepEqual([read.oldestSeq, read.headSeq], [8, 7]);
  });

  test(name('history is bounded by age, on publish and on read; the position outlives the messages'), async (t) => {
    let now = Date.now();
    const b = await fixture.make(t, { history: { maxAgeMs: 10_000 }, clock: { now: () => now } });
    await b.publish('c', 'old1');
    await b.publish('c', 'old2');
    now += 6_000;
    await b.publish('c', 'newer');
    now += 6_000;
    let read = await b.read('c', 0);
    assert.deepEqual(
      read.messages.map((m) => m.data),
      ['newer'],
    );
    assert.equal(read.oldestSeq, 3);
    now += 6_000;
    read = await b.read('c', 0);
    assert.deepEqual(read.messages, []);
    assert.deepEqual([read.oldestSeq, read.headSeq], [4, 3]);
    const next = await b.publish('c', 'later');
    assert.equal(next.seq, 4, 'numbering goes on after the history emptied');
  });

  test(name('concurrent publishers get one total order with no position used twice'), async (t) => {
    const brokers = fixture.shared
      ? await fixture.shared(t, 3)
      : await (async () => {
          const one = await fixture.make(t);
          return [one, one, one];
        })();
    const results = await Promise.all(
      brokers.flatMap((b, n) => Array.from({ length: 100 }, (_, i) => b.publish('c', `${n}:${i}`))),
    );
    const seqs = results.map((m) => m.seq).sort((x, y) => x - y);
    assert.deepEqual(
      seqs,
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    const read = await brokers[0]!.read('c', 0);
    assert.deepEqual(
      read.messages.map((m) => m.seq),
      seqs,
    );
    const bySeq = new Map(results.map((m) => [m.seq, m.data]));
    for (const m of read.messages) assert.equal(m.data, bySeq.get(m.seq));
    for (const b of brokers)
      assert.equal(
        new Set(results.map((m) => m.epoch)).size,
        1,
        `one epoch (${b === brokers[0] ? 'first' : 'other'} broker)`,
      );
  });

  test(
    name('the listener hears every publish of a watched channel, in order per channel, before publish resolves'),
    async (t) => {
      const b = await fixture.make(t);
      const heard: Message[] = [];
      b.setListener((m) => heard.push(m));
      b.watch('w');
      b.watch('v');
      // Redis delivers through pub/sub: give its SUBSCRIBE time to land.
      await b.head('w');
      await b.head('v');
      const published: Message[] = [];
      for (let i = 0; i < 20; i++) published.push(await b.publish(i % 2 === 0 ? 'w' : 'v', `n${i}`));
      await waitUntil(() => heard.length >= 20);
      for (const channel of ['w', 'v']) {
        assert.deepEqual(
          heard.filter((m) => m.channel === channel).map((m) => m.seq),
          published.filter((m) => m.channel === channel).map((m) => m.seq),
        );
      }
    },
  );

  if (fixture.boundsTotal) {
    test(name('history is bounded in total across channels; the oldest messages anywhere go first'), async (t) => {
      const b = await fixture.make(t, { maxTotalBytes: 2_000 });
      for (let i = 0; i < 40; i++) await b.publish(`ch${i % 8}`, 'z'.repeat(100));
      let kept = 0;
      for (let c = 0; c < 8; c++) kept += (await b.stats(`ch${c}`)).messages;
      assert.ok(kept > 0 && kept * 100 <= 2_000, `kept ${kept} of 40 within 2,000 bytes`);
      const newest = await b.read('ch7', 0);
      assert.equal(newest.messages.at(-1)?.seq, 5, 'the newest message is kept');
      const oldest = await b.read('ch0', 0);
      assert.ok(oldest.oldestSeq > 1, 'the first messages are the ones that went');
    });
  }

  test(name('claimOnce, where offered, says yes once per key'), async (t) => {
    const b = await fixture.make(t);
    if (b.claimOnce === undefined) {
      t.diagnostic(`${fixture.name} keeps single-use state in the hub (one process)`);
      assert.equal(b.claimOnce, undefined);
      return;
    }
    assert.equal(await b.claimOnce('ticket:1', 60_000), true);
    assert.equal(await b.claimOnce('ticket:1', 60_000), false);
    assert.equal(await b.claimOnce('ticket:2', 60_000), true);
  });
}

async function waitUntil(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}
