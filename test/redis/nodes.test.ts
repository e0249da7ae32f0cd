import assert from 'node:assert/strict';
import { test } from 'node:test';
import { publish, waitFor } from '../helpers/hub.js';
import {
  type KometaProcess,
  type SseCollector,
  deletePrefix,
  seqOf,
  sseCollector,
  startBalancer,
  startKometa,
  uniquePrefix,
} from '../helpers/redis.js';
import { SHARED_REDIS_URL } from '../helpers/shared-redis.js';

type After = { after(fn: () => Promise<void> | void): void };

/**
 * `count` kometa processes on the shared Redis, all under one fresh prefix; killed (by PID) and cleaned up after the
 * test.
 */
async function nodes(t: After, count: number, extra: string[] = []): Promise<KometaProcess[]> {
  const prefix = uniquePrefix('nodes');
  t.after(() => deletePrefix(SHARED_REDIS_URL, prefix));
  const started = await Promise.all(
    Array.from({ length: count }, () =>
      startKometa([
        '--redis',
        SHARED_REDIS_URL,
        '--redis-prefix',
        prefix,
        '--retry',
        '0.2',
        '--publish-rate',
        '0',
        ...extra,
      ]),
    ),
  );
  for (const node of started) t.after(() => node.kill('SIGKILL'));
  return started;
}

function subscribe(t: After, url: string): SseCollector {
  const collector = sseCollector(url);
  t.after(() => collector.close());
  return collector;
}

/** Wait until the node has `count` live subscribers on the channel (so nothing published next is missed). */
async function subscribed(node: KometaProcess, channel: string, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const res = await fetch(`${node.url}/channels/${channel}`);
    const info = (await res.json()) as { subscribers: number };
    if (info.subscribers >= count) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${count} subscribers on ${node.url}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('three kometa processes on one Redis: 1,000 messages published round-robin reach every subscriber, in one ' +
  'order; a subscriber moves node mid-stream', async (t) => {
  const [a, b, c] = await nodes(t, 3);
  const subs = [a!, b!, c!].map((node) => subscribe(t, `${node.url}/sub/news`));
  const mover = subscribe(t, `${a!.url}/sub/news`);
  await subscribed(a!, 'news', 2);
  await subscribed(b!, 'news', 1);
  await subscribed(c!, 'news', 1);

  const published: string[] = [];
  const publishing = (async () => {
    const all = [a!, b!, c!];
    for (let i = 1; i <= 1000; i++) {
      await publish(all[i % 3]!.url, 'news', `m${i}`);
      published.push(`m${i}`);
    }
  })();

  // Mid-stream, the mover leaves node A and comes back on node B with the cursor it had.
  await waitFor(() => mover.received.length >= 300, 20_000, 'the mover to get 300 messages');
  mover.close();
  const cursor = mover.lastId();
  const moved = subscribe(t, `${b!.url}/sub/news?lastEventId=${encodeURIComponent(cursor)}`);

  await publishing;
  const expected = Array.from({ length: 1000 }, (_, i) => `m${i + 1}`);
  for (const sub of subs) await waitFor(() => sub.received.length >= 1000, 20_000, 'all 1,000 messages');
  await waitFor(() => mover.received.length + moved.received.length >= 1000, 20_000, 'the mover to catch up');

  for (const sub of subs) {
    assert.deepEqual(
      sub.received.map((r) => r.data),
      expected,
    );
    assert.deepEqual(sub.gaps, []);
  }
  // The same positions everywhere: one order, not three.
  const ids = subs[0]!.received.map((r) => r.id);
  for (const sub of subs.slice(1))
    assert.deepEqual(
      sub.received.map((r) => r.id),
      ids,
    );
  assert.deepEqual(
    ids.map(seqOf),
    Array.from({ length: 1000 }, (_, i) => i + 1),
  );

  assert.deepEqual(
    [...mover.received, ...moved.received].map((r) => r.data),
    expected,
    'nothing missed, nothing twice',
  );
  assert.deepEqual(moved.gaps, []);
  assert.ok(moved.received.length > 0 && mover.received.length >= 300);
});

test('concurrent publishers on different nodes get one total order, the same on every node', async (t) => {
  const all = await nodes(t, 3);
  const subs = all.map((node) => subscribe(t, `${node.url}/sub/race`));
  for (const node of all) await subscribed(node, 'race', 1);

  // Each node has its own publisher; they run at once, each one in order.
  const answers = await Promise.all(
    all.map(async (node, n) => {
      const ids: { id: string; data: string }[] = [];
      for (let i = 1; i <= 200; i++)
        ids.push({ id: (await publish(node.url, 'race', `p${n}-${i}`)).id, data: `p${n}-${i}` });
      return ids;
    }),
  );
  for (const sub of subs) await waitFor(() => sub.received.length >= 600, 20_000, 'all 600 messages');

  const order = subs[0]!.received;
  for (const sub of subs) {
    assert.deepEqual(sub.received, order, 'every node delivers the same order with the same ids');
    assert.deepEqual(sub.gaps, []);
  }
  assert.deepEqual(
    order.map((r) => seqOf(r.id)),
    Array.from({ length: 600 }, (_, i) => i + 1),
  );
  // The id each publisher was given is the position at which everyone saw its message.
  const byId = new Map(order.map((r) => [r.id, r.data]));
  for (const answered of answers) for (const { id, data } of answered) assert.equal(byId.get(id), data);
  // And each publisher's own messages keep the order it sent them in.
  for (let n = 0; n < 3; n++) {
    const mine = order.filter((r) => r.data.startsWith(`p${n}-`)).map((r) => r.data);
    assert.deepEqual(
      mine,
      Array.from({ length: 200 }, (_, i) => `p${n}-${i + 1}`),
    );
  }
  // Publishers really did interleave (otherwise this test proves little).
  const firstOwners = new Set(order.slice(0, 300).map((r) => r.data.split('-')[0]));
  assert.ok(firstOwners.size > 1, 'publishes from several nodes interleave');
});

test('kometa serve --workers 2 shares one port; a message published through any worker reaches subscribers on ' +
  'all', async (t) => {
  const [node] = await nodes(t, 1, ['--workers', '2']);
  // Subscribers resume from the first message's id, so they miss nothing however late each
  // worker registers them; connections are handed to workers in turn, so both get some.
  const first = await publish(node!.url, 'w', 'm0');
  const subs = Array.from({ length: 6 }, () =>
    subscribe(t, `${node!.url}/sub/w?lastEventId=${encodeURIComponent(first.id)}`),
  );
  await waitFor(() => subs.every((s) => s.opens() === 1), 10_000, 'six subscriptions');
  for (let i = 1; i <= 100; i++) await publish(node!.url, 'w', `m${i}`);
  for (const sub of subs) await waitFor(() => sub.received.length >= 100, 10_000, '100 messages');
  const expected = Array.from({ length: 100 }, (_, i) => `m${i + 1}`);
  for (const sub of subs)
    assert.deepEqual(
      sub.received.map((r) => r.data),
      expected,
    );
});

test('a kometa process killed with SIGKILL mid-stream: its clients reconnect through the load balancer to another ' +
  'node and lose nothing', async (t) => {
  const all = await nodes(t, 3);
  const [victim, , publisherNode] = all;
  const balancer = await startBalancer(all.map((n) => n.port));
  t.after(() => balancer.close());
  const subs = Array.from({ length: 6 }, () => subscribe(t, `${balancer.url}/sub/live`));
  await waitFor(() => subs.every((s) => s.opens() === 1), 10_000, 'six subscriptions');
  for (const node of all) await subscribed(node, 'live', 2);

  const expected = Array.from({ length: 600 }, (_, i) => `m${i + 1}`);
  let killed = false;
  for (let i = 1; i <= 600; i++) {
    await publish(publisherNode!.url, 'live', `m${i}`);
    if (i === 200) {
      await waitFor(() => subs.every((s) => s.received.length >= 150), 10_000, 'subscribers to be mid-stream');
      await victim!.kill('SIGKILL');
      killed = true;
    }
  }
  assert.ok(killed);
  for (const sub of subs) await waitFor(() => sub.received.length >= 600, 20_000, 'every subscriber to catch up');
  for (const sub of subs) {
    assert.deepEqual(
      sub.received.map((r) => r.data),
      expected,
    );
    assert.deepEqual(sub.gaps, []);
  }
  const reconnects = subs.reduce((sum, s) => sum + s.opens() - 1, 0);
  assert.ok(reconnects >= 2, `the victim's subscribers reconnected (${reconnects})`);
});
