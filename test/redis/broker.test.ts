import assert from 'node:assert/strict';
import { test } from 'node:test';

// Positions, history bounds and concurrent publishers are in the broker conformance suite
// (test/brokers/redis.test.ts); these are what only Redis does: shared state, pub/sub, outages.
import { Redis } from 'ioredis';
import { RedisBroker, type RedisBrokerOptions, type RedisSubscriberLink } from '../../src/brokers/redis.js';
import type { Message } from '../../src/core/message.js';
import { httpRequest, publish, startHub, waitFor } from '../helpers/hub.js';
import { deletePrefix, epochOf, seqOf, sseCollector, uniquePrefix } from '../helpers/redis.js';
import { SHARED_REDIS_URL } from '../helpers/shared-redis.js';

/** A broker on the shared Redis under a prefix of its own, closed and cleaned up after the test. */
async function broker(
  t: { after(fn: () => Promise<void>): void },
  prefix: string,
  options: RedisBrokerOptions = {},
): Promise<RedisBroker> {
  const b = new RedisBroker({ url: SHARED_REDIS_URL, prefix, ...options });
  t.after(() => b.close());
  await b.ready();
  return b;
}

function cleanup(t: { after(fn: () => Promise<void>): void }, prefix: string): void {
  t.after(() => deletePrefix(SHARED_REDIS_URL, prefix));
}

test('the epoch lives in Redis: another process (or a restarted one) sees the same positions', async (t) => {
  const prefix = uniquePrefix('epoch');
  cleanup(t, prefix);
  const a = await broker(t, prefix);
  const m = await a.publish('room', 'one');
  await a.close();
  const b = await broker(t, prefix);
  assert.deepEqual(await b.head('room'), { epoch: m.epoch, seq: 1 });
  const next = await b.publish('room', 'two');
  assert.equal(next.epoch, m.epoch);
  assert.equal(next.seq, 2);
});

test('when Redis loses the channel, it starts a new epoch instead of reusing positions', async (t) => {
  const prefix = uniquePrefix('lost');
  cleanup(t, prefix);
  const b = await broker(t, prefix);
  const before = await b.publish('room', 'one');
  await b.publish('room', 'two');
  await deletePrefix(SHARED_REDIS_URL, prefix);
  const after = await b.publish('room', 'three');
  assert.notEqual(after.epoch, before.epoch);
  assert.equal(after.seq, 1);
  const read = await b.read('room', 0);
  assert.deepEqual(
    read.messages.map((m) => m.data),
    ['three'],
  );
});

test('a watched channel hears publishes from another process, in order', async (t) => {
  const prefix = uniquePrefix('watch');
  cleanup(t, prefix);
  const a = await broker(t, prefix);
  const b = await broker(t, prefix);
  const heard: Message[] = [];
  b.setListener((m) => heard.push(m));
  b.watch('c');
  await b.head('c'); // waits for the SUBSCRIBE
  for (let i = 1; i <= 50; i++) await a.publish('c', `m${i}`);
  await a.publish('other', 'not watched');
  await waitFor(() => heard.length >= 50, 5000, '50 messages');
  assert.deepEqual(
    heard.map((m) => m.data),
    Array.from({ length: 50 }, (_, i) => `m${i + 1}`),
  );
  assert.deepEqual(
    heard.map((m) => m.seq),
    Array.from({ length: 50 }, (_, i) => i + 1),
  );
  b.unwatch('c');
  await a.publish('c', 'after unwatch');
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(heard.length, 50);
});

/** A subscriber connection that loses the messages it is told to, like pub/sub around a reconnect. */
function lossySubscriber(url: string, drop: (payload: string) => boolean): RedisSubscriberLink {
  const real = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, autoResubscribe: false });
  const listeners: ((channel: string, payload: string) => void)[] = [];
  real.on('message', (channel: string, payload: string) => {
    if (!drop(payload)) for (const l of listeners) l(channel, payload);
  });
  return new Proxy(real, {
    get(target, key, receiver) {
      if (key === 'on') {
        return (event: string, listener: (...args: any[]) => void) => {
          if (event === 'message') listeners.push(listener);
          else target.on(event, listener);
          return receiver;
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as unknown as RedisSubscriberLink;
}

test('the hub fills a hole left by a lost pub/sub message from history', async (t) => {
  const prefix = uniquePrefix('hole');
  cleanup(t, prefix);
  const publisher = await broker(t, prefix);
  const commands = new Redis(SHARED_REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  const subscriber = lossySubscriber(SHARED_REDIS_URL, (payload) => /\nlost\d$/.test(payload));
  const b = new RedisBroker({ prefix, links: { commands, subscriber } });
  await b.ready();
  const hub = await startHub({ broker: b });
  t.after(() => hub.close());
  const sub = sseCollector(`${hub.url}/sub/c`);
  t.after(() => sub.close());
  await waitFor(() => hub.hub.liveSubscriptions.size === 1, 5000, 'the subscription');
  for (const data of ['m1', 'lost2', 'lost3', 'm4', 'm5']) await publisher.publish('c', data);
  await waitFor(() => sub.received.length >= 5, 5000, 'five messages');
  assert.deepEqual(
    sub.received.map((r) => r.data),
    ['m1', 'lost2', 'lost3', 'm4', 'm5'],
  );
  assert.deepEqual(sub.gaps, []);
});

test('after its pub/sub link comes back, the broker catches subscribers up without waiting for another ' +
  'publish', async (t) => {
  const prefix = uniquePrefix('nudge');
  cleanup(t, prefix);
  const publisher = await broker(t, prefix);
  const commands = new Redis(SHARED_REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  // A slow first reconnect leaves a window in which publishes reach nobody over pub/sub.
  const subscriber = new Redis(SHARED_REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    retryStrategy: () => 1500,
  });
  const b = new RedisBroker({ prefix, links: { commands, subscriber } });
  await b.ready();
  const hub = await startHub({ broker: b });
  t.after(() => hub.close());
  const sub = sseCollector(`${hub.url}/sub/c`);
  t.after(() => sub.close());
  await waitFor(() => hub.hub.liveSubscriptions.size === 1, 5000, 'the subscription');
  await publisher.publish('c', 'before');
  await waitFor(() => sub.received.length === 1, 5000, 'the first message');

  subscriber.disconnect(true);
  await waitFor(() => b.health().ok === false, 5000, 'the broker to notice');
  for (const data of ['during1', 'during2', 'during3']) await publisher.publish('c', data);
  assert.notEqual(subscriber.status, 'ready', 'the publishes happened while the link was down');
  const health = await httpRequest(`${hub.url}/healthz`);
  assert.equal(health.status, 503);
  assert.match(health.json<{ broker: { reason: string } }>().broker.reason, /unreachable/);

  await waitFor(() => sub.received.length >= 4, 10_000, 'the missed messages');
  assert.deepEqual(
    sub.received.map((r) => r.data),
    ['before', 'during1', 'during2', 'during3'],
  );
  assert.deepEqual(sub.gaps, []);
  assert.equal(sub.opens(), 1, 'the subscriber stayed connected');
  await waitFor(() => b.health().ok, 5000, 'health to recover');
});

test('through the hub: resume with a cursor, and a gap when the history was trimmed', async (t) => {
  const prefix = uniquePrefix('hub');
  cleanup(t, prefix);
  const b = await broker(t, prefix, { history: { maxMessages: 3 } });
  const hub = await startHub({ broker: b });
  t.after(() => hub.close());
  const ids: string[] = [];
  for (let i = 1; i <= 3; i++) ids.push((await publish(hub.url, 'c', `m${i}`)).id);
  const resumed = sseCollector(`${hub.url}/sub/c?lastEventId=${encodeURIComponent(ids[0]!)}`);
  t.after(() => resumed.close());
  await waitFor(() => resumed.received.length >= 2, 5000, 'the backlog');
  assert.deepEqual(
    resumed.received.map((r) => r.data),
    ['m2', 'm3'],
  );
  assert.deepEqual(resumed.gaps, []);
  resumed.close();

  for (let i = 4; i <= 8; i++) await publish(hub.url, 'c', `m${i}`);
  const late = sseCollector(`${hub.url}/sub/c?lastEventId=${encodeURIComponent(ids[2]!)}`);
  t.after(() => late.close());
  await waitFor(() => late.received.length >= 3, 5000, 'what is left');
  assert.deepEqual(
    late.gaps.map((g) => [g.reason, g.missed]),
    [['history-truncated', { from: 4, to: 5 }]],
  );
  assert.deepEqual(
    late.received.map((r) => r.data),
    ['m6', 'm7', 'm8'],
  );
  assert.equal(epochOf(late.received[0]!.id), epochOf(ids[0]!));
  assert.equal(seqOf(late.received[2]!.id), 8);

  const info = await httpRequest(`${hub.url}/channels/c`);
  assert.equal(info.json<{ history: { messages: number } }>().history.messages, 3);
});

test('when Redis comes back with fewer messages than it had confirmed (an older snapshot, a lagging replica), the ' +
  'channel gets a new epoch rather than reused positions', async (t) => {
  const prefix = uniquePrefix('rollback');
  cleanup(t, prefix);
  const publisher = await broker(t, prefix);
  const commands = new Redis(SHARED_REDIS_URL, { enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  const subscriber = new Redis(SHARED_REDIS_URL, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResubscribe: false,
    retryStrategy: () => 300,
  });
  const b = new RedisBroker({ prefix, links: { commands, subscriber } });
  await b.ready();
  const hub = await startHub({ broker: b });
  t.after(() => hub.close());
  const sub = sseCollector(`${hub.url}/sub/c`);
  t.after(() => sub.close());
  await waitFor(() => hub.hub.liveSubscriptions.size === 1, 5000, 'the subscription');
  for (let i = 1; i <= 5; i++) await publisher.publish('c', `m${i}`);
  await waitFor(() => sub.received.length === 5, 5000, 'five messages');

  // Redis "forgets" messages 4 and 5 while the node is disconnected, as a restart from an older AOF would.
  subscriber.disconnect(true);
  const raw = new Redis(SHARED_REDIS_URL);
  t.after(() => raw.disconnect());
  await raw.xtrim(`${prefix}{c}.s`, 'MAXLEN', 3);
  await raw.hset(`${prefix}{c}.h`, 'seq', 3);
  await waitFor(() => b.health().ok, 5000, 'the reconnect');
  // Once the node has checked, a new publish must not come out as position 4 of the old epoch.
  let next: Message | undefined;
  const deadline = Date.now() + 5000;
  while (next === undefined || next.epoch === epochOf(sub.received[0]!.id)) {
    assert.ok(Date.now() < deadline, 'the rollback was noticed');
    await new Promise((r) => setTimeout(r, 20));
    const head = await publisher.head('c');
    if (head.epoch !== epochOf(sub.received[0]!.id)) next = await publisher.publish('c', 'after');
  }
  await waitFor(() => sub.received.length === 6, 5000, 'the message after the rollback');
  assert.deepEqual(
    sub.received.map((r) => r.data),
    ['m1', 'm2', 'm3', 'm4', 'm5', 'after'],
  );
  assert.deepEqual(
    sub.gaps.map((g) => [g.reason, g.epoch, g.at]),
    [['epoch-changed', next.epoch, 5]],
  );
});
