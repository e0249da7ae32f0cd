import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { AccessPolicy } from '../../src/auth/access.js';
import { parseSse } from '../../src/protocol/sse.js';
import { parsePresenceData } from '../../src/protocol/presence.js';
import { httpRequest, startHub, waitFor, type TestHub } from '../helpers/hub.js';
import { startKometa, startOwnRedis, uniquePrefix } from '../helpers/redis.js';
import { SECRET, token, wsFollower } from '../backend/helpers.js';

const GRACE_MS = 400;

/** An SSE subscriber on a raw socket: the test can read every byte it got, and end it with a TCP RST. */
async function rawSse(hub: TestHub, path: string): Promise<{ socket: Socket; text: () => string }> {
  const socket = connect(hub.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  let received = '';
  const opened = new Promise<void>((resolve) =>
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString();
      if (received.includes('\r\n\r\n')) resolve();
    }),
  );
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
  await opened;
  assert.match(received, /^HTTP\/1\.1 200/);
  return { socket, text: () => received.slice(received.indexOf('\r\n\r\n') + 4) };
}

/** A `?presence=1` EventSource that records joins and leaves as `join:client`, and messages as `message:data`. */
async function presenceWatcher(url: string): Promise<{ seen: string[]; source: EventSource }> {
  const seen: string[] = [];
  const source = new EventSource(url);
  for (const kind of ['join', 'leave'] as const) {
    source.addEventListener(`kometa-${kind}`, (event) => seen.push(`${kind}:${parsePresenceData(event.data).client}`));
  }
  source.onmessage = (event) => seen.push(`message:${event.data}`);
  await new Promise<void>((resolve) => (source.onopen = () => resolve()));
  return { seen, source };
}

test('?presence=1 gets one join per member and a leave after an RST; plain subscribers see nothing new', async (t) => {
  const access = await AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: 'pub-key' });
  const hub = await startHub({ http: { access }, presence: { graceMs: GRACE_MS, events: true } });
  t.after(() => hub.close());
  const room = { subscribe: ['room'] };
  const u1 = await token(room, 'u1');
  const u2 = await token(room, 'u2');

  const watcher = await presenceWatcher(`${hub.url}/sub/room?token=${u1}&client=ann-tab&presence=1`);
  t.after(() => watcher.source.close());
  const plain = await rawSse(hub, `/sub/room?token=${u2}&client=bob-tab`);
  t.after(() => plain.socket.destroy());
  const ws = await wsFollower(hub.url, ['room'], `?token=${u1}&client=ann-phone`);
  t.after(() => ws.close());
  await waitFor(() => watcher.seen.length === 3, 5000, 'three joins');
  assert.deepEqual(watcher.seen, ['join:ann-tab', 'join:bob-tab', 'join:ann-phone']);

  const published = await httpRequest(`${hub.url}/pub/room`, {
    method: 'POST',
    headers: { Authorization: 'Bearer pub-key', 'Content-Type': 'text/plain' },
    body: 'hi',
  });
  assert.equal(published.status, 201);
  await waitFor(() => watcher.seen.length === 4 && ws.got.length === 1, 5000, 'the message');

  plain.socket.resetAndDestroy();
  await waitFor(() => watcher.seen.length === 5, GRACE_MS + 5000, 'the leave');
  assert.deepEqual(watcher.seen, ['join:ann-tab', 'join:bob-tab', 'join:ann-phone', 'message:hi', 'leave:bob-tab']);

  // The plain subscribers got the message and nothing else; its id is the one the presence subscriber saw.
  const plainEvents = parseSse(plain.text()).filter((e) => e.data !== '');
  assert.deepEqual(plainEvents.map((e) => [e.type, e.data]), [['message', 'hi']]);
  assert.deepEqual(ws.got.map((m) => m.data), ['hi']);
  assert.equal(plainEvents[0]!.id, published.json<{ id: string }>().id);

  // History is the channel's content: joins and leaves are not in it.
  const history = await httpRequest(`${hub.url}/channels/room/history`, { headers: { Authorization: `Bearer ${u1}` } });
  assert.equal(history.status, 200, history.body);
  assert.deepEqual(history.json<{ messages: { data: string }[] }>().messages.map((m) => m.data), ['hi']);

  // A plain subscriber resuming from before the joins gets the message only, and a cursor past everything.
  const epoch = published.json<{ id: string }>().id.split('~')[1]!;
  const resumed = await httpRequest(`${hub.url}/sub/room?transport=poll&timeout=0.2&token=${u2}&since=room~${epoch}~0`);
  assert.equal(resumed.status, 200, resumed.body);
  const poll = resumed.json<{ messages: { data: string; event?: string }[] }>();
  assert.deepEqual(poll.messages.map((m) => m.data), ['hi']);

  // Nobody else may publish a join.
  const forged = await httpRequest(`${hub.url}/pub/room?event=kometa-join`, {
    method: 'POST',
    headers: { Authorization: 'Bearer pub-key', 'Content-Type': 'text/plain' },
    body: '{}',
  });
  assert.equal(forged.status, 400);
  assert.equal(forged.json<{ code: string }>().code, 'KOMETA_ERR_EVENT_NAME');
});

test('?presence=1 on a server without --presence-events is a 400 with a code', async (t) => {
  const hub = await startHub({ presence: { graceMs: GRACE_MS } });
  t.after(() => hub.close());
  const res = await httpRequest(`${hub.url}/sub/room?transport=poll&timeout=0.2&presence=1`);
  assert.equal(res.status, 400);
  assert.equal(res.json<{ code: string }>().code, 'KOMETA_ERR_PRESENCE_EVENTS_OFF');
  const bad = await httpRequest(`${hub.url}/sub/room?transport=poll&timeout=0.2&presence=yes`);
  assert.equal(bad.status, 400);
});

test('long-poll churn under ?presence=1: one join, no leave while it polls', async (t) => {
  const hub = await startHub({ presence: { graceMs: 1000, events: true } });
  t.after(() => hub.close());
  const watcher = await presenceWatcher(`${hub.url}/sub/feed?client=watcher&presence=1`);
  t.after(() => watcher.source.close());
  let since = '';
  const until = performance.now() + 4000;
  let polls = 0;
  while (performance.now() < until) {
    const res = await httpRequest(`${hub.url}/sub/feed?transport=poll&timeout=0.2&client=poller${since}`);
    assert.equal(res.status, 200);
    since = `&since=${encodeURIComponent(res.json<{ cursor: string }>().cursor)}`;
    polls++;
  }
  assert.ok(polls >= 5, `${polls} polls`);
  assert.deepEqual(watcher.seen, ['join:watcher', 'join:poller']);
});

test('across two nodes on one Redis, a ?presence=1 subscriber on A sees a join made on B', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const args = ['--redis', redis.url, '--redis-prefix', uniquePrefix('in-band'), '--presence-events'];
  const a = await startKometa(args);
  t.after(() => a.kill());
  const b = await startKometa(args);
  t.after(() => b.kill());
  const watcher = await presenceWatcher(`${a.url}/sub/room?client=on-a&presence=1`);
  t.after(() => watcher.source.close());
  const onB = new EventSource(`${b.url}/sub/room?client=on-b`);
  t.after(() => onB.close());
  await waitFor(() => watcher.seen.length === 2, 10_000, 'the join from B');
  assert.deepEqual(watcher.seen, ['join:on-a', 'join:on-b']);
});
