import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startHub, waitFor } from '../helpers/hub.js';
import { sseCollector } from '../helpers/redis.js';
import { type Delivery, postJson, wsFollower } from './helpers.js';

test('one batch of 1,000 items over 1,000 channels reaches every subscriber once, with the id the batch ' +
  'answered', async (t) => {
  const hub = await startHub({ limits: { maxChannelsPerSubscription: 100 } });
  t.after(() => hub.close());
  const channels = Array.from({ length: 1000 }, (_, i) => `batch.${i}`);
  const followers = await Promise.all(
    Array.from({ length: 10 }, (_, k) => wsFollower(hub.url, channels.slice(k * 100, k * 100 + 100))),
  );
  t.after(() => followers.forEach((f) => f.close()));
  const res = await postJson(
    `${hub.url}/pub`,
    channels.map((channel, i) => ({ channel, data: `item ${i}` })),
  );
  assert.equal(res.status, 200);
  const body = res.json<{
    results: { channel: string; id: string }[];
    published: number;
    failed: number;
    atomic: boolean;
  }>();
  assert.equal(body.results.length, 1000);
  assert.equal(body.published, 1000);
  assert.equal(body.failed, 0);
  assert.equal(body.atomic, false);
  const all = () => followers.flatMap((f) => f.got);
  await waitFor(() => all().length >= 1000, 10_000, '1,000 deliveries');
  await new Promise((r) => setTimeout(r, 100));
  const got = all();
  assert.equal(got.length, 1000, 'each message once');
  const byChannel = new Map(got.map((d) => [d.channel, d]));
  body.results.forEach((result, i) => {
    assert.equal(result.channel, `batch.${i}`);
    assert.deepEqual(byChannel.get(result.channel), { channel: result.channel, id: result.id, data: `item ${i}` });
  });
});

test('items of one batch arrive in item order per channel (1,000 items over 10 channels, NDJSON)', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const channels = Array.from({ length: 10 }, (_, i) => `order.${i}`);
  const follower = await wsFollower(hub.url, channels);
  t.after(() => follower.close());
  const sse = sseCollector(`${hub.url}/sub/order.3`);
  t.after(() => sse.close());
  await waitFor(() => hub.hub.subscriberCount('order.3') === 2);
  const lines = Array.from({ length: 1000 }, (_, i) =>
    JSON.stringify({ channel: `order.${(i * 7) % 10}`, data: String(i) }),
  ).join('\n');
  const { httpRequest } = await import('../helpers/hub.js');
  const res = await httpRequest(`${hub.url}/pub`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-ndjson' },
    body: `${lines}\n`,
  });
  assert.equal(res.status, 200, res.body);
  await waitFor(() => follower.got.length === 1000 && sse.received.length === 100, 10_000, 'every delivery');
  for (const channel of channels) {
    const expected = Array.from({ length: 1000 }, (_, i) => i)
      .filter((i) => `order.${(i * 7) % 10}` === channel)
      .map(String);
    const seen = follower.got.filter((d: Delivery) => d.channel === channel);
    assert.deepEqual(
      seen.map((d) => d.data),
      expected,
      `${channel} in item order`,
    );
    const seqs = seen.map((d) => Number(d.id.split('~')[2]));
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
    );
  }
  assert.deepEqual(
    sse.received.map((m) => m.data),
    Array.from({ length: 1000 }, (_, i) => i)
      .filter((i) => (i * 7) % 10 === 3)
      .map(String),
  );
});

test('a batch with bad items answers the good ones and names each bad one in its place', async (t) => {
  const hub = await startHub({ limits: { maxMessageBytes: 100 } });
  t.after(() => hub.close());
  const follower = await wsFollower(hub.url, ['good.1', 'good.2']);
  t.after(() => follower.close());
  const res = await postJson(`${hub.url}/pub`, [
    { channel: 'good.1', data: 'a' },
    { channel: 'bad name', data: 'b' },
    { channel: 'good.2', data: 'x'.repeat(101) },
    { channel: 'good.2', data: { json: true } },
    { data: 'no channel' },
    'not an object',
    { channel: 'good.1', data: 'c', event: 'kometa-fake' },
    { channel: 'good.1', data: 'd' },
  ]);
  assert.equal(res.status, 200);
  const { results, published, failed } = res.json<{
    results: { channel?: string; id?: string; error?: { code: string; status: number } }[];
    published: number;
    failed: number;
  }>();
  assert.deepEqual(
    results.map((r) => r.error?.code ?? 'ok'),
    [
      'ok',
      'KOMETA_ERR_CHANNEL_NAME',
      'KOMETA_ERR_BODY_TOO_LARGE',
      'ok',
      'KOMETA_ERR_PUBLISH_ITEM',
      'KOMETA_ERR_PUBLISH_ITEM',
      'KOMETA_ERR_EVENT_NAME',
      'ok',
    ],
  );
  assert.equal(results[1]!.channel, 'bad name');
  assert.equal(results[2]!.channel, 'good.2');
  assert.equal(results[2]!.error!.status, 413);
  assert.equal(published, 3);
  assert.equal(failed, 5);
  await waitFor(() => follower.got.length === 3);
  assert.deepEqual(
    follower.got.filter((d) => d.channel === 'good.1').map((d) => d.data),
    ['a', 'd'],
  );
  assert.deepEqual(
    follower.got.filter((d) => d.channel === 'good.2').map((d) => d.data),
    ['{"json":true}'],
  );
});

test("one broadcast item reaches 500 channels, each subscriber with its own channel's id", async (t) => {
  const hub = await startHub({ limits: { maxChannelsPerSubscription: 100 } });
  t.after(() => hub.close());
  const channels = Array.from({ length: 500 }, (_, i) => `room.${i}`);
  const followers = await Promise.all(
    Array.from({ length: 5 }, (_, k) => wsFollower(hub.url, channels.slice(k * 100, k * 100 + 100))),
  );
  t.after(() => followers.forEach((f) => f.close()));
  const res = await postJson(`${hub.url}/pub`, [{ channels, data: 'to everyone', event: 'notice' }]);
  assert.equal(res.status, 200);
  const [item] = res.json<{ results: [{ channels: { channel: string; id: string }[] }] }>().results;
  assert.equal(item.channels.length, 500);
  await waitFor(() => followers.every((f) => f.got.length === 100), 10_000, '500 deliveries');
  const got = followers.flatMap((f) => f.got);
  assert.equal(got.length, 500);
  const ids = new Map(item.channels.map((r) => [r.channel, r.id]));
  for (const delivery of got) {
    assert.equal(delivery.data, 'to everyone');
    assert.equal(delivery.id, ids.get(delivery.channel));
    assert.ok(delivery.id.startsWith(`${delivery.channel}~`));
  }
  assert.equal(new Set(got.map((d) => d.channel)).size, 500);
});

test('batch limits: too many messages or bytes refuse the whole batch before anything is published', async (t) => {
  const hub = await startHub({ http: { backend: { maxBatchItems: 10, maxBatchBytes: 2000 } } });
  t.after(() => hub.close());
  const tooMany = await postJson(`${hub.url}/pub`, [
    { channels: Array.from({ length: 11 }, (_, i) => `c${i}`), data: 'x' },
  ]);
  assert.equal(tooMany.status, 413);
  assert.equal(tooMany.json<{ code: string; limit: number }>().code, 'KOMETA_ERR_BATCH_TOO_LARGE');
  const tooBig = await postJson(`${hub.url}/pub`, [{ channel: 'a', data: 'x'.repeat(3000) }]);
  assert.equal(tooBig.status, 413);
  assert.equal(tooBig.json<{ code: string }>().code, 'KOMETA_ERR_BATCH_TOO_LARGE');
  const notArray = await postJson(`${hub.url}/pub`, { channel: 'a', data: 'x' });
  assert.equal(notArray.json<{ code: string }>().code, 'KOMETA_ERR_BATCH');
  const empty = await postJson(`${hub.url}/pub`, []);
  assert.equal(empty.status, 400);
  assert.equal((await hub.hub.channelInfo('a')).headSeq, 0);
});
