import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Kometa, type KometaGap, type KometaMessage, type StateChange, backoffDelay } from '../../src/client/index.js';
import { SseParser } from '../../src/client/transports/sse.js';
import { Hub } from '../../src/core/hub.js';
import { createHubServer } from '../../src/http/hub-server.js';
import { publish, startHub, waitFor } from '../helpers/hub.js';
import { sleep, trackSockets } from './helpers.js';

const fast = { backoff: { baseMs: 50, maxMs: 500 }, WebSocket } as const;

function recorder(client: Kometa) {
  const states: StateChange[] = [];
  client.on('state', (change) => states.push(change));
  return states;
}

test('in Node, with the ws package, every channel of a client shares one WebSocket connection', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const client = new Kometa(hub.url, fast);
  t.after(() => client.close());
  const states = recorder(client);
  const got: KometaMessage[] = [];
  client.subscribe('alpha', { onMessage: (m) => got.push(m) });
  client.subscribe('beta', { onMessage: (m) => got.push(m) });
  await waitFor(() => hub.hub.subscriberCount('alpha') === 1 && hub.hub.subscriberCount('beta') === 1);
  assert.equal(hub.server.webSocket.connectionCount, 1);
  const ack = await client.publish('alpha', 'one');
  await client.publish('beta', { n: 2 }, { event: 'json' });
  await waitFor(() => got.length === 2);
  assert.deepEqual(got[0], { channel: 'alpha', id: ack.id, data: 'one' });
  assert.deepEqual({ ...got[1], id: '' }, { channel: 'beta', id: '', event: 'json', data: '{"n":2}' });
  assert.deepEqual(
    states.map((s) => [s.previous, s.state, s.reason, s.transport]),
    [
      ['disconnected', 'connecting', 'connect', undefined],
      ['connecting', 'connected', 'open', 'websocket'],
    ],
  );
  assert.equal(client.transport, 'websocket');
});

for (const transport of ['sse', 'poll'] as const) {
  test(`in Node, ${transport} follows several channels in one request and publishes over HTTP`, async (t) => {
    const hub = await startHub();
    t.after(() => hub.close());
    const client = new Kometa(hub.url, { ...fast, transports: [transport] });
    t.after(() => client.close());
    const got: string[] = [];
    client.subscribe('a', { onMessage: (m) => got.push(`${m.channel}:${m.data}`) });
    client.subscribe('b', { onMessage: (m) => got.push(`${m.channel}:${m.data}`) });
    await waitFor(
      () => client.state === 'connected' && hub.hub.subscriberCount('a') === 1 && hub.hub.subscriberCount('b') === 1,
    );
    const expected: string[] = [];
    for (let i = 0; i < 20; i++) {
      const channel = i % 3 === 0 ? 'b' : 'a';
      await client.publish(channel, `m${i}`);
      expected.push(`${channel}:m${i}`);
    }
    await waitFor(() => got.length >= 20, 5000, 'all messages');
    assert.deepEqual(got, expected);
    assert.equal(client.transport, transport);
  });
}

for (const transport of ['websocket', 'sse', 'poll'] as const) {
  test(`${transport}: when every connection is cut mid-stream the client reconnects and gets everything once, in ` +
    `order`, async (t) => {
    const hub = await startHub();
    t.after(() => hub.close());
    const sockets = trackSockets(hub.server.server);
    const client = new Kometa(hub.url, { ...fast, transports: [transport] });
    t.after(() => client.close());
    const states = recorder(client);
    const got: string[] = [];
    client.subscribe('stream', { onMessage: (m) => got.push(m.data) });
    await waitFor(() => client.state === 'connected' && hub.hub.subscriberCount('stream') === 1);
    for (let i = 0; i < 150; i++) {
      await publish(hub.url, 'stream', String(i));
      if (i === 50 || i === 100) {
        await waitFor(() => got.length > i - 10, 5000, 'some delivery');
        sockets.destroyAll();
      }
    }
    await waitFor(() => got.length >= 150, 10_000, 'all 150');
    await sleep(50);
    assert.deepEqual(
      got,
      Array.from({ length: 150 }, (_, i) => String(i)),
    );
    assert.ok(
      states.some((s) => s.previous === 'connected' && s.state === 'connecting' && s.reason !== 'open'),
      JSON.stringify(states),
    );
  });
}

test('a hub restarted on the same port with a fresh in-memory history: the client gets a gap, then the new ' +
  'messages', async (t) => {
  const first = await startHub();
  const port = first.port;
  const client = new Kometa(first.url, { ...fast, transports: ['websocket'] });
  t.after(() => client.close());
  const got: string[] = [];
  const gaps: KometaGap[] = [];
  client.subscribe('room', { onMessage: (m) => got.push(m.data), onGap: (g) => gaps.push(g) });
  await waitFor(() => first.hub.subscriberCount('room') === 1);
  await publish(first.url, 'room', 'before');
  await waitFor(() => got.length === 1);
  await first.close();
  await waitFor(() => client.state === 'connecting');
  const broker = new MemoryBroker();
  const second = createHubServer(new Hub(broker), { shutdownGraceMs: 200 });
  await second.listen(port, '127.0.0.1');
  t.after(async () => {
    await second.close();
    await broker.close();
  });
  await publish(`http://127.0.0.1:${port}`, 'room', 'after-1');
  await publish(`http://127.0.0.1:${port}`, 'room', 'after-2');
  await waitFor(() => got.length === 3, 10_000, 'the messages after the restart');
  assert.deepEqual(got, ['before', 'after-1', 'after-2']);
  assert.equal(gaps.length, 1);
  assert.equal(gaps[0]!.reason, 'epoch-changed');
});

test('when the hub refuses WebSocket the client falls back to SSE and the application sees only the state ' +
  'change', async (t) => {
  const hub = await startHub({ http: { websocket: false } });
  t.after(() => hub.close());
  const client = new Kometa(hub.url, fast);
  t.after(() => client.close());
  const states = recorder(client);
  const got: string[] = [];
  client.subscribe('news', { onMessage: (m) => got.push(m.data) });
  await waitFor(() => client.state === 'connected' && hub.hub.subscriberCount('news') === 1);
  await publish(hub.url, 'news', 'hi');
  await waitFor(() => got.length === 1);
  assert.deepEqual(
    states.map((s) => [s.state, s.transport]),
    [
      ['connecting', undefined],
      ['connected', 'sse'],
    ],
  );
});

test('on a fallback transport the client tries the better one again later and switches without loss or ' +
  'duplicates', async (t) => {
  const hub = await startHub({ http: { websocket: false } });
  t.after(() => hub.close());
  const client = new Kometa(hub.url, { ...fast, upgradeAfterMs: 150 });
  t.after(() => client.close());
  const switches: string[] = [];
  client.on('transport', (change) => switches.push(`${change.previous}->${change.transport}`));
  const got: string[] = [];
  client.subscribe('feed', { onMessage: (m) => got.push(m.data) });
  await waitFor(() => client.transport === 'sse' && hub.hub.subscriberCount('feed') === 1);
  (hub.server.webSocket.options as { enabled: boolean }).enabled = true;
  for (let i = 0; i < 60; i++) {
    await publish(hub.url, 'feed', String(i));
    await sleep(10);
  }
  await waitFor(() => got.length >= 60, 5000);
  await sleep(50);
  assert.equal(client.transport, 'websocket');
  assert.deepEqual(switches, ['sse->websocket']);
  assert.deepEqual(
    got,
    Array.from({ length: 60 }, (_, i) => String(i)),
  );
});

test("from: 'start' replays what the channel's history holds; cursor resumes after a stored id", async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const ids: string[] = [];
  for (let i = 1; i <= 4; i++) ids.push((await publish(hub.url, 'log', `m${i}`)).id);
  for (const transport of ['websocket', 'sse', 'poll'] as const) {
    const client = new Kometa(hub.url, { ...fast, transports: [transport] });
    t.after(() => client.close());
    const all: string[] = [];
    const later: string[] = [];
    const gaps: KometaGap[] = [];
    client.subscribe('log', { from: 'start', onMessage: (m) => all.push(m.data), onGap: (g) => gaps.push(g) });
    const other = new Kometa(hub.url, { ...fast, transports: [transport] });
    t.after(() => other.close());
    other.subscribe('log', { cursor: ids[1], onMessage: (m) => later.push(m.data) });
    await waitFor(() => all.length === 4 && later.length === 2, 5000, `${transport} history`);
    assert.deepEqual(all, ['m1', 'm2', 'm3', 'm4']);
    assert.deepEqual(later, ['m3', 'm4']);
    assert.deepEqual(gaps, []);
  }
});

test('changing the channel set re-opens the SSE request without losing messages of the channels kept', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const client = new Kometa(hub.url, { ...fast, transports: ['sse'] });
  t.after(() => client.close());
  const got: string[] = [];
  client.subscribe('keep', { onMessage: (m) => got.push(m.data) });
  await waitFor(() => hub.hub.subscriberCount('keep') === 1);
  const publishing = (async () => {
    for (let i = 0; i < 40; i++) {
      await publish(hub.url, 'keep', String(i));
      await sleep(2);
    }
  })();
  const extra = client.subscribe('extra', {});
  await sleep(20);
  extra.unsubscribe();
  await sleep(20);
  client.subscribe('third', {});
  await publishing;
  await waitFor(() => got.length >= 40);
  assert.deepEqual(
    got,
    Array.from({ length: 40 }, (_, i) => String(i)),
  );
  await waitFor(() => hub.hub.subscriberCount('extra') === 0);
});

test('invalid channel names are refused before anything is sent', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const client = new Kometa(hub.url, fast);
  t.after(() => client.close());
  assert.throws(() => client.subscribe('a/b', {}), { code: 'KOMETA_ERR_CHANNEL_NAME' });
  await assert.rejects(client.publish('x', 'y'.repeat(70_000)), { code: 'KOMETA_ERR_BODY_TOO_LARGE' });
});

test('close() ends the connection and reports one last state change', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const client = new Kometa(hub.url, fast);
  const states = recorder(client);
  client.subscribe('x', {});
  await waitFor(() => hub.hub.subscriberCount('x') === 1);
  client.close();
  client.close();
  await waitFor(() => hub.server.webSocket.connectionCount === 0);
  assert.deepEqual(states.at(-1), {
    state: 'disconnected',
    previous: 'connected',
    reason: 'client-closed',
    transport: 'websocket',
  });
});

test('backoff is exponential with full jitter and capped', () => {
  assert.equal(
    backoffDelay(0, { baseMs: 100, maxMs: 1000 }, () => 0.999),
    99,
  );
  assert.equal(
    backoffDelay(3, { baseMs: 100, maxMs: 1000 }, () => 0.5),
    400,
  );
  assert.equal(
    backoffDelay(20, { baseMs: 100, maxMs: 1000 }, () => 0.999),
    999,
  );
  assert.equal(
    backoffDelay(5, { baseMs: 100, maxMs: 1000 }, () => 0),
    0,
  );
});

test('the SSE parser handles every line ending, split anywhere, and id-only events', () => {
  const text =
    'retry: 2000\r\n\r\nid: a~e~1\r\ndata: one\r\ndata: two\r\n\r\n: heartbeat\n\nid: a~e~2\rdata: x\r\rid: ' +
      'a~e~2\n\nevent: kometa-gap\ndata: {}\n\n';
  for (const size of [1, 2, 3, 7, text.length]) {
    const parser = new SseParser();
    const events: unknown[] = [];
    for (let i = 0; i < text.length; i += size) parser.feed(text.slice(i, i + size), (e) => events.push(e));
    assert.deepEqual(
      events,
      [
        { type: 'message', data: 'one\ntwo', hasData: true, id: 'a~e~1' },
        { type: 'message', data: 'x', hasData: true, id: 'a~e~2' },
        { type: 'message', data: '', hasData: false, id: 'a~e~2' },
        { type: 'kometa-gap', data: '{}', hasData: true, id: undefined },
      ],
      `chunk size ${size}`,
    );
  }
});
