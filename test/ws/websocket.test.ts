import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { publish, startHub, waitFor } from '../helpers/hub.js';
import { openSocket } from './helpers.js';

test('a subscriber gets a subscribed frame, then every message published on the channel with its id', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'subscribe', channel: 'news', ref: 1 });
  const subscribed = await socket.next();
  assert.equal(subscribed.type, 'subscribed');
  assert.equal(subscribed.channel, 'news');
  assert.equal(subscribed.ref, 1);
  assert.match(String(subscribed.cursor), /^news~[A-Za-z0-9]+~0$/);
  const first = await publish(hub.url, 'news', 'hello');
  const second = await publish(hub.url, 'news', '{"a":1}', 'update');
  assert.deepEqual(await socket.next(), { type: 'message', channel: 'news', id: first.id, data: 'hello' });
  assert.deepEqual(await socket.next(), {
    type: 'message',
    channel: 'news',
    id: second.id,
    event: 'update',
    data: '{"a":1}',
  });
});

test('one connection follows several channels, and unsubscribe stops one of them', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'subscribe', channel: 'a' });
  socket.send({ type: 'subscribe', channel: 'b' });
  await socket.next('subscribed');
  await socket.next('subscribed');
  await publish(hub.url, 'a', 'a1');
  await publish(hub.url, 'b', 'b1');
  assert.equal((await socket.next('message')).data, 'a1');
  assert.equal((await socket.next('message')).data, 'b1');
  socket.send({ type: 'unsubscribe', channel: 'a', ref: 'u' });
  assert.deepEqual(await socket.next(), { type: 'unsubscribed', channel: 'a', ref: 'u' });
  await publish(hub.url, 'a', 'a2');
  await publish(hub.url, 'b', 'b2');
  const next = await socket.next();
  assert.equal(next.data, 'b2');
  assert.equal(hub.hub.subscriberCount('a'), 0);
  assert.equal(hub.server.webSocket.connectionCount, 1);
});

test('a subscriber that resumes with a message id gets every later message once, in order, then live ' +
  'ones', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const ids: string[] = [];
  for (let i = 1; i <= 5; i++) ids.push((await publish(hub.url, 'log', `m${i}`)).id);
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'subscribe', channel: 'log', cursor: ids[1] });
  assert.equal((await socket.next()).cursor, ids[1]);
  for (const n of [3, 4, 5]) assert.equal((await socket.next('message')).data, `m${n}`);
  await publish(hub.url, 'log', 'm6');
  const live = await socket.next();
  assert.equal(live.data, 'm6');
  assert.equal(socket.frames.filter((f) => f.type === 'message').length, 4);
});

test('a resume from a position no longer in history gets a gap frame first, then what is left', async (t) => {
  const hub = await startHub({ memory: { history: { maxMessages: 3 } } });
  t.after(() => hub.close());
  const ids: string[] = [];
  for (let i = 1; i <= 10; i++) ids.push((await publish(hub.url, 'short', `m${i}`)).id);
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'subscribe', channel: 'short', cursor: ids[0] });
  await socket.next('subscribed');
  const gap = await socket.next();
  assert.equal(gap.type, 'gap');
  assert.equal(gap.reason, 'history-truncated');
  assert.deepEqual(gap.missed, { from: 2, to: 7 });
  assert.equal(gap.id, ids[6]);
  for (const n of [8, 9, 10]) assert.equal((await socket.next()).data, `m${n}`);
});

test('a cursor from another epoch (a restarted in-memory hub) gets an epoch-changed gap', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  await publish(hub.url, 'room', 'kept');
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'subscribe', channel: 'room', cursor: 'room~oldepoch~41' });
  await socket.next('subscribed');
  const gap = await socket.next();
  assert.equal(gap.type, 'gap');
  assert.equal(gap.reason, 'epoch-changed');
  assert.equal((await socket.next()).data, 'kept');
});

test('publish frames are stored, acknowledged with the id, and reach other subscribers', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const reader = await openSocket(hub.url);
  const writer = await openSocket(hub.url);
  t.after(() => Promise.all([reader.close(), writer.close()]));
  reader.send({ type: 'subscribe', channel: 'chat' });
  await reader.next('subscribed');
  writer.send({ type: 'publish', channel: 'chat', data: 'hi there', event: 'say', ref: 7 });
  const ack = await writer.next();
  assert.equal(ack.type, 'published');
  assert.equal(ack.ref, 7);
  assert.equal(ack.subscribers, 1);
  assert.deepEqual(await reader.next(), {
    type: 'message',
    channel: 'chat',
    id: ack.id,
    event: 'say',
    data: 'hi there',
  });
  writer.send({ type: 'publish', channel: 'bad/name', data: 'x', ref: 8 });
  const refused = await writer.next();
  assert.equal(refused.code, 'KOMETA_ERR_CHANNEL_NAME');
  assert.equal(refused.ref, 8);
});

test('a hub can turn publishing over WebSocket off', async (t) => {
  const hub = await startHub({ http: { websocketPublish: false } });
  t.after(() => hub.close());
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'publish', channel: 'chat', data: 'x', ref: 1 });
  const error = await socket.next();
  assert.equal(error.type, 'error');
  assert.equal(error.code, 'KOMETA_ERR_PUBLISH_DISABLED');
  assert.equal(error.status, 403);
});

test('ping is answered with pong and its ref', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'ping', ref: 'p1' });
  assert.deepEqual(await socket.next(), { type: 'pong', ref: 'p1' });
});

test('requests with bad arguments get an error frame and the connection stays open', async (t) => {
  const hub = await startHub({ limits: { maxChannelsPerSubscription: 2 } });
  t.after(() => hub.close());
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  const cases: [unknown, string][] = [
    [{ type: 'subscribe', channel: '../etc', ref: 1 }, 'KOMETA_ERR_CHANNEL_NAME'],
    [{ type: 'subscribe', channel: 'ok', cursor: 'nonsense', ref: 2 }, 'KOMETA_ERR_CURSOR'],
    [{ type: 'subscribe', channel: 'ok', cursor: 'ok~zzz~5', ref: 3 }, ''],
    [{ type: 'subscribe', channel: 'ok', ref: 4 }, 'KOMETA_ERR_ALREADY_SUBSCRIBED'],
    [{ type: 'subscribe', channel: 'two', ref: 5 }, ''],
    [{ type: 'subscribe', channel: 'three', ref: 6 }, 'KOMETA_ERR_TOO_MANY_CHANNELS'],
    [{ type: 'publish', channel: 'ok', data: 'x', event: 'bad event', ref: 7 }, 'KOMETA_ERR_EVENT_NAME'],
    [{ type: 'publish', channel: 'ok', data: 'x'.repeat(64 * 1024 + 1), ref: 8 }, 'KOMETA_ERR_BODY_TOO_LARGE'],
  ];
  for (const [frame, code] of cases) {
    socket.send(frame);
    for (;;) {
      const answer = await socket.next();
      if (answer.type === 'gap' || answer.type === 'message') continue;
      assert.equal(answer.ref, (frame as { ref: number }).ref);
      if (code === '') assert.equal(answer.type, 'subscribed');
      else assert.equal(answer.code, code, JSON.stringify(answer));
      break;
    }
  }
  const ahead = await openSocket(hub.url);
  t.after(() => ahead.close());
  const epoch = String((await hub.hub.channelInfo('ahead')).epoch);
  ahead.send({ type: 'subscribe', channel: 'ahead', cursor: `ahead~${epoch}~99` });
  assert.equal((await ahead.next()).code, 'KOMETA_ERR_CURSOR_AHEAD');
  socket.send({ type: 'ping' });
  assert.equal((await socket.next()).type, 'pong');
});

for (const [what, frame, code, reason] of [
  ['text that is not JSON', 'hello', 4400, 'KOMETA_ERR_WS_FRAME'],
  ['a JSON array', '[1,2]', 4400, 'KOMETA_ERR_WS_FRAME'],
  ['an unknown type', '{"type":"launch"}', 4400, 'KOMETA_ERR_WS_FRAME'],
  ['a subscribe without a channel', '{"type":"subscribe"}', 4400, 'KOMETA_ERR_WS_FRAME'],
  [
    'a publish whose data is not a string',
    '{"type":"publish","channel":"a","data":{"x":1}}',
    4400,
    'KOMETA_ERR_WS_FRAME',
  ],
  ['an object ref', '{"type":"ping","ref":{}}', 4400, 'KOMETA_ERR_WS_FRAME'],
] as const) {
  test(`${what} gets an error frame and close code ${code}`, async (t) => {
    const hub = await startHub();
    t.after(() => hub.close());
    const socket = await openSocket(hub.url);
    t.after(() => socket.close());
    socket.send(frame);
    const error = await socket.next();
    assert.equal(error.type, 'error');
    assert.equal(error.code, reason);
    assert.deepEqual(await socket.closed, { code, reason });
  });
}

test('a binary frame closes the connection with 1003', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.ws.send(Buffer.from([1, 2, 3]));
  assert.deepEqual(await socket.closed, { code: 1003, reason: 'KOMETA_ERR_WS_BINARY' });
});

test('a frame larger than the limit closes the connection with 1009 and the process keeps serving', async (t) => {
  const hub = await startHub({ limits: { maxMessageBytes: 1024 } });
  t.after(() => hub.close());
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'publish', channel: 'a', data: 'x'.repeat(64 * 1024) });
  assert.equal((await socket.closed).code, 1009);
  const again = await openSocket(hub.url);
  t.after(() => again.close());
  again.send({ type: 'ping' });
  assert.equal((await again.next()).type, 'pong');
});

test('a consumer that stops reading is closed with 4503 and resumes from history without loss', async (t) => {
  const hub = await startHub({
    http: { maxQueueBytes: 64 * 1024 },
    memory: { history: { maxMessages: 100_000, maxBytes: 512 * 1024 * 1024 } },
  });
  t.after(() => hub.close());
  const slow = await openSocket(hub.url);
  t.after(() => slow.close());
  slow.send({ type: 'subscribe', channel: 'firehose' });
  await slow.next('subscribed');
  slow.ws.pause();
  const payload = 'x'.repeat(16 * 1024);
  let published = 0;
  let lastId = '';
  // Keep publishing until the kernel's buffers are full and the hub's bound trips.
  while (hub.hub.subscriberCount('firehose') > 0 && published < 5000) {
    const batch = [];
    for (let i = 0; i < 20; i++) batch.push(hub.hub.publish('firehose', `${published + i}:${payload}`));
    published += 20;
    lastId = (await Promise.all(batch)).at(-1)!.message.id;
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(hub.hub.subscriberCount('firehose'), 0, 'the slow consumer was dropped');
  slow.ws.resume();
  assert.deepEqual(await slow.closed, { code: 4503, reason: 'KOMETA_ERR_SLOW_CONSUMER' });
  const received = slow.frames.filter((f) => f.type === 'message');
  received.forEach((f, i) => assert.equal(String(f.data).split(':')[0], String(i)));
  const resumed = await openSocket(hub.url);
  t.after(() => resumed.close());
  resumed.send({ type: 'subscribe', channel: 'firehose', cursor: received.at(-1)!.id });
  await resumed.next('subscribed');
  let expected = received.length;
  while (expected < published) {
    const frame = await resumed.next('message', 10_000);
    assert.equal(String(frame.data).split(':')[0], String(expected));
    expected++;
  }
  const all = [...received, ...resumed.frames.filter((f) => f.type === 'message')];
  assert.equal(all.length, published);
  assert.equal(all.at(-1)!.id, lastId);
});

test('a hub that shuts down closes WebSocket connections with 1001', async (t) => {
  const hub = await startHub();
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  socket.send({ type: 'subscribe', channel: 'a' });
  await socket.next('subscribed');
  const idle = await openSocket(hub.url);
  t.after(() => idle.close());
  await hub.close();
  assert.deepEqual(await socket.closed, { code: 1001, reason: 'KOMETA_ERR_DRAINING' });
  assert.deepEqual(await idle.closed, { code: 1001, reason: 'KOMETA_ERR_DRAINING' });
});

test('a hub configured to refuse upgrades answers 404, and so does any other path', async (t) => {
  const off = await startHub({ http: { websocket: false } });
  t.after(() => off.close());
  await assert.rejects(openSocket(off.url), /Unexpected server response: 404/);
  const on = await startHub();
  t.after(() => on.close());
  await assert.rejects(openSocket(on.url, '/elsewhere'), /Unexpected server response: 404/);
  await waitFor(() => on.server.webSocket.connectionCount === 0);
});

test('every subscriber of a channel receives the same bytes', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const raw: Buffer[][] = [[], []];
  const sockets = await Promise.all([openSocket(hub.url), openSocket(hub.url)]);
  t.after(() => Promise.all(sockets.map((s) => s.close())));
  sockets.forEach((s, i) => s.ws.on('message', (data: WebSocket.RawData) => raw[i]!.push(data as Buffer)));
  for (const s of sockets) {
    s.send({ type: 'subscribe', channel: 'same' });
    await s.next('subscribed');
  }
  await publish(hub.url, 'same', 'x\ny "quoted" ✓');
  await Promise.all(sockets.map((s) => s.next('message')));
  assert.deepEqual(raw[0]!.at(-1), raw[1]!.at(-1));
});
