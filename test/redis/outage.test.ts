import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisBroker } from '../../src/brokers/redis.js';
import { type TestHub, httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { type OwnRedis, epochOf, seqOf, sseCollector, startOwnRedis, uniquePrefix } from '../helpers/redis.js';

type After = { after(fn: () => Promise<void> | void): void };

async function hubOn(t: After, redis: OwnRedis, prefix: string): Promise<TestHub> {
  const broker = new RedisBroker({
    url: redis.url,
    prefix,
    reconnect: { minMs: 50, maxMs: 250 },
    commandTimeoutMs: 1000,
  });
  await broker.ready();
  const hub = await startHub({ broker });
  t.after(() => hub.close());
  return hub;
}

interface Attempt {
  readonly status: number;
  readonly data: string;
  readonly id?: string;
  readonly code?: string;
}

async function tryPublish(url: string, channel: string, data: string): Promise<Attempt> {
  const res = await httpRequest(`${url}/pub/${channel}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain' },
    body: data,
  });
  const body = res.json<{ id?: string; code?: string }>();
  return { status: res.status, data, id: body.id, code: body.code };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Two hubs on a Redis of the test's own, a subscriber on each, publishes
 * alternating between the hubs; Redis is killed (SIGKILL) mid-stream and
 * started again. Returns what publishers were told and what subscribers got.
 */
async function outage(t: After, persistent: boolean) {
  const redis = await startOwnRedis({ persistent });
  t.after(() => redis.stop());
  const prefix = uniquePrefix('outage');
  const hubs = [await hubOn(t, redis, prefix), await hubOn(t, redis, prefix)];
  const subs = hubs.map((hub) => sseCollector(`${hub.url}/sub/c`));
  t.after(() => subs.forEach((s) => s.close()));
  for (const hub of hubs) await waitFor(() => hub.hub.liveSubscriptions.size === 1, 5000, 'the subscription');

  const attempts: Attempt[] = [];
  let n = 0;
  const next = () => tryPublish(hubs[n % 2]!.url, 'c', `m${++n}`).then((a) => (attempts.push(a), a));

  for (let i = 0; i < 100; i++) assert.equal((await next()).status, 201);
  await waitFor(() => subs.every((s) => s.received.length === 100), 10_000, 'the first 100 messages');

  await redis.kill();
  // Publishes while Redis is down are refused, not accepted and dropped.
  let refused = 0;
  while (refused < 10) {
    const attempt = await next();
    assert.equal(attempt.status, 503, 'no 201 while Redis is down');
    assert.equal(attempt.code, 'KOMETA_ERR_BROKER_UNAVAILABLE');
    refused++;
  }
  for (const hub of hubs) {
    const health = await httpRequest(`${hub.url}/healthz`);
    assert.equal(health.status, 503);
    assert.equal(health.json<{ broker: { ok: boolean } }>().broker.ok, false);
  }

  await redis.start();
  // The hubs reconnect by themselves (each on its own backoff); publishes are refused until they have.
  let accepted = 0;
  const deadline = Date.now() + 15_000;
  while (accepted < 100) {
    const attempt = await next();
    if (attempt.status === 201) accepted++;
    else {
      assert.equal(attempt.status, 503);
      assert.ok(Date.now() < deadline, 'the hubs reconnected');
      await pause(20);
    }
  }
  for (const hub of hubs) await waitFor(() => hub.broker.health().ok, 10_000, 'health to recover');
  const health = await httpRequest(`${hubs[0]!.url}/healthz`);
  assert.equal(health.status, 200);

  const stored = attempts.filter((a) => a.status === 201);
  for (const sub of subs) await waitFor(() => sub.received.length >= stored.length, 15_000, 'every accepted message');
  return { attempts, stored, subs };
}

test('Redis killed and restarted with its data (AOF): 503 during the outage, then delivery resumes and no accepted ' +
  'message is lost', async (t) => {
  const { stored, subs } = await outage(t, true);
  for (const sub of subs) {
    assert.deepEqual(
      sub.received.map((r) => r.data),
      stored.map((a) => a.data),
      'every 201 message, in order, once',
    );
    assert.deepEqual(
      sub.received.map((r) => r.id),
      stored.map((a) => a.id),
    );
    assert.deepEqual(sub.gaps, [], 'the epoch survived with the data');
    assert.equal(sub.opens(), 1, 'the subscriber stayed connected through the outage');
  }
  const ids = stored.map((a) => a.id!);
  assert.equal(new Set(ids.map(epochOf)).size, 1);
  assert.deepEqual(
    ids.map(seqOf),
    Array.from({ length: 200 }, (_, i) => i + 1),
  );
});

test('Redis killed and restarted without its data: subscribers get an epoch-changed gap, not silence, then the new ' +
  'messages', async (t) => {
  const { stored, subs } = await outage(t, false);
  const before = stored.slice(0, 100);
  const after = stored.slice(100);
  assert.notEqual(epochOf(after[0]!.id!), epochOf(before[0]!.id!), 'a new epoch: the old positions are gone');
  assert.deepEqual(
    after.map((a) => seqOf(a.id!)),
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
  for (const sub of subs) {
    assert.deepEqual(
      sub.received.map((r) => r.data),
      stored.map((a) => a.data),
    );
    assert.deepEqual(
      sub.gaps.map((g) => [g.reason, g.epoch, g.at]),
      [['epoch-changed', epochOf(after[0]!.id!), 100]],
      'one gap notice, between the old messages and the new',
    );
    assert.equal(sub.opens(), 1);
  }
});

test('a hub started while Redis is down reports it, answers 503, and works once Redis comes', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  await redis.kill();
  const prefix = uniquePrefix('late');
  const broker = new RedisBroker({ url: redis.url, prefix, reconnect: { minMs: 50, maxMs: 250 } });
  const hub = await startHub({ broker });
  t.after(() => hub.close());
  await waitFor(
    () => !broker.health().ok && /unreachable/.test(String((broker.health() as { reason?: string }).reason)),
    5000,
    'health to say why',
  );
  const refused = await tryPublish(hub.url, 'c', 'early');
  assert.equal(refused.status, 503);
  assert.equal(refused.code, 'KOMETA_ERR_BROKER_UNAVAILABLE');
  const sub = await httpRequest(`${hub.url}/sub/c?transport=poll&timeout=0`);
  assert.equal(sub.status, 503);

  await redis.start();
  await broker.ready();
  const accepted = await tryPublish(hub.url, 'c', 'late');
  assert.equal(accepted.status, 201);
  assert.equal(seqOf(accepted.id!), 1);
});
