import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { startKometa, startOwnRedis, uniquePrefix } from '../helpers/redis.js';
import { postJson, wsFollower } from './helpers.js';

/*
 * "Exclude the sender" over real connections: SSE (the eventsource package)
 * and WebSocket (ws), on one hub and on two nodes sharing a Redis. A
 * subscriber that is skipped must not get the message; since every
 * connection gets messages in order, "it got the next message and not the
 * excluded one before it" shows that without waiting for anything not to happen.
 */

function sse(url: string) {
  const source = new EventSource(url);
  const got: string[] = [];
  let opened = false;
  source.onopen = () => (opened = true);
  source.onmessage = (event) => got.push(event.data);
  return { got, opened: () => opened, close: () => source.close() };
}

function publishTo(baseUrl: string, channel: string, data: string, exclude?: string) {
  return httpRequest(`${baseUrl}/pub/${channel}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain', ...(exclude === undefined ? {} : { 'Kometa-Exclude-Client': exclude }) },
    body: data,
  });
}

test('Kometa-Exclude-Client skips that client on SSE and WebSocket; the next message reaches all', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const alice = sse(`${hub.url}/sub/room?client=alice`);
  const bob = sse(`${hub.url}/sub/room?client=bob`);
  t.after(() => [alice, bob].forEach((s) => s.close()));
  const aliceWs = await wsFollower(hub.url, ['room'], '?client=alice');
  const bobWs = await wsFollower(hub.url, ['room'], '?client=bob');
  t.after(() => [aliceWs, bobWs].forEach((s) => s.close()));
  await waitFor(() => alice.opened() && bob.opened(), 5000, 'SSE subscribers open');

  const excluded = await publishTo(hub.url, 'room', 'from alice', 'alice');
  assert.equal(excluded.status, 201, excluded.body);
  assert.equal((await publishTo(hub.url, 'room', 'to all')).status, 201);
  const texts = () => [alice.got, bob.got, aliceWs.got.map((d) => d.data), bobWs.got.map((d) => d.data)];
  await waitFor(() => texts().every((got) => got.includes('to all')), 5000, 'to all');
  assert.deepEqual(alice.got, ['to all'], 'the excluded SSE subscriber');
  assert.deepEqual(aliceWs.got.map((d) => d.data), ['to all'], 'the excluded WebSocket subscriber');
  assert.deepEqual(bob.got, ['from alice', 'to all']);
  assert.deepEqual(bobWs.got.map((d) => d.data), ['from alice', 'to all']);

  // History is the same for everyone: the excluded message is in it.
  const history = await httpRequest(`${hub.url}/channels/room/history`);
  assert.deepEqual(
    history.json<{ messages: { data: string }[] }>().messages.map((m) => m.data),
    ['from alice', 'to all'],
  );
});

test('a batch item\'s "exclude" and a WebSocket publish frame\'s "exclude": true skip the sender only', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const alice = sse(`${hub.url}/sub/room?client=alice`);
  const carol = sse(`${hub.url}/sub/room`); // no client id: never excluded
  t.after(() => [alice, carol].forEach((s) => s.close()));
  // A WebSocket without client=: "exclude": true still means this connection.
  const sender = await wsFollower(hub.url, ['room']);
  const other = await wsFollower(hub.url, ['room'], '?client=other');
  t.after(() => [sender, other].forEach((s) => s.close()));
  await waitFor(() => alice.opened() && carol.opened(), 5000, 'SSE subscribers open');

  const batch = await postJson(`${hub.url}/pub`, [
    { channel: 'room', data: 'b1', exclude: 'alice' },
    { channel: 'room', data: 'b2', exclude: 'bad id' },
    { channel: 'room', data: 'b3' },
  ]);
  assert.equal(batch.status, 200, batch.body);
  const results = batch.json<{ results: { error?: { code: string } }[] }>().results;
  assert.equal(results[0]!.error, undefined);
  assert.equal(results[1]!.error?.code, 'KOMETA_ERR_PUBLISH_ITEM', 'a bad id fails its item alone');
  assert.equal(results[2]!.error, undefined);

  const answered = new Promise<{ type: string; id: string }>((resolve) =>
    sender.ws.on('message', (raw) => {
      const frame = JSON.parse(raw.toString()) as { type: string; id: string };
      if (frame.type === 'published') resolve(frame);
    }),
  );
  sender.ws.send(JSON.stringify({ type: 'publish', channel: 'room', data: 'w1', exclude: true }));
  assert.match((await answered).id, /^room~/);
  assert.equal((await publishTo(hub.url, 'room', 'last')).status, 201);

  const wsTexts = (follower: typeof sender) => follower.got.map((d) => d.data);
  await waitFor(
    () => [alice.got, carol.got, wsTexts(sender), wsTexts(other)].every((got) => got.includes('last')),
    5000,
    'last everywhere',
  );
  assert.deepEqual(alice.got, ['b3', 'w1', 'last']);
  assert.deepEqual(carol.got, ['b1', 'b3', 'w1', 'last']);
  assert.deepEqual(wsTexts(sender), ['b1', 'b3', 'last'], 'the WebSocket sender skips its own message');
  assert.deepEqual(wsTexts(other), ['b1', 'b3', 'w1', 'last']);
});

test('an excluded id that is not a client id gets 400 KOMETA_ERR_EXCLUDE_CLIENT, nothing published', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  for (const bad of ['has space', 'x'.repeat(65), 'é']) {
    const res = await httpRequest(`${hub.url}/pub/room`, {
      method: 'POST',
      headers: { 'Content-Type': 'text/plain', 'Kometa-Exclude-Client': encodeURI(bad) === bad ? bad : 'a/b' },
      body: 'x',
    });
    assert.equal(res.status, 400, res.body);
    assert.equal(res.json<{ code: string }>().code, 'KOMETA_ERR_EXCLUDE_CLIENT');
  }
  assert.equal((await hub.broker.head('room')).seq, 0);
});

test('on two nodes sharing a Redis, the excluded client is skipped wherever it is connected', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const args = ['--redis', redis.url, '--redis-prefix', uniquePrefix('exclude')];
  const [a, b] = await Promise.all([startKometa(args), startKometa(args)]);
  t.after(() => Promise.all([a.kill(), b.kill()]));
  const aliceOnA = sse(`${a.url}/sub/room?client=alice`);
  const bobOnB = sse(`${b.url}/sub/room?client=bob`);
  t.after(() => [aliceOnA, bobOnB].forEach((s) => s.close()));
  const aliceOnB = await wsFollower(b.url, ['room'], '?client=alice');
  const bobOnA = await wsFollower(a.url, ['room'], '?client=bob');
  t.after(() => [aliceOnB, bobOnA].forEach((s) => s.close()));
  await waitFor(() => aliceOnA.opened() && bobOnB.opened(), 5000, 'SSE subscribers open');

  assert.equal((await publishTo(a.url, 'room', 'from alice', 'alice')).status, 201);
  assert.equal((await publishTo(b.url, 'room', 'to all')).status, 201);
  const texts = () => [aliceOnA.got, bobOnB.got, aliceOnB.got.map((d) => d.data), bobOnA.got.map((d) => d.data)];
  await waitFor(() => texts().every((got) => got.includes('to all')), 5000, 'to all on every node');
  const [aliceSse, bobSse, aliceWs, bobWs] = texts();
  assert.deepEqual(aliceSse, ['to all'], 'alice on the publishing node');
  assert.deepEqual(aliceWs, ['to all'], 'alice on the other node');
  assert.deepEqual(bobSse, ['from alice', 'to all']);
  assert.deepEqual(bobWs, ['from alice', 'to all']);
});

test('the kometa/server SDK passes exclude on publish and on batch items', async (t) => {
  const { KometaServer } = await import('../../src/server/index.js');
  const hub = await startHub();
  t.after(() => hub.close());
  const alice = sse(`${hub.url}/sub/room?client=alice`);
  const bob = sse(`${hub.url}/sub/room?client=bob`);
  t.after(() => [alice, bob].forEach((s) => s.close()));
  await waitFor(() => alice.opened() && bob.opened(), 5000, 'SSE subscribers open');
  const server = new KometaServer({ url: hub.url });
  await server.publish('room', 's1', { exclude: 'alice' });
  await server.batch([{ channel: 'room', data: 's2', exclude: 'bob' }]);
  await server.publish('room', 's3');
  await waitFor(() => alice.got.includes('s3') && bob.got.includes('s3'), 5000, 's3');
  assert.deepEqual(alice.got, ['s2', 's3']);
  assert.deepEqual(bob.got, ['s1', 's3']);
});

