import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { test } from 'node:test';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Hub } from '../../src/core/hub.js';
import type { Sink } from '../../src/core/sink.js';
import { sseEncoder } from '../../src/transports/sse.js';
import { httpRequest, publish, startHub, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

test('curl --no-buffer sees each message of the chunked stream arrive on its own, as it is published', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const curl = spawn('curl', ['--no-buffer', '--raw', '--silent', `${hub.url}/sub/ticker?transport=stream`]);
  t.after(() => curl.kill());
  let output = '';
  curl.stdout.setEncoding('utf8');
  curl.stdout.on('data', (d: string) => (output += d));
  await waitFor(() => output.includes('"type":"live"'), 5000, 'curl to subscribe');
  for (let i = 1; i <= 5; i++) {
    const before = output.length;
    await publish(hub.url, 'ticker', `tick ${i}`);
    // Each message is visible to curl before the next one is published.
    await waitFor(() => output.includes(`"data":"tick ${i}"`), 5000, `tick ${i} at curl`);
    const arrived = output.slice(before);
    assert.ok(!output.includes(`tick ${i + 1}`));
    // --raw shows the chunk framing: hex size, CRLF, one NDJSON line, CRLF.
    const match = /^([0-9a-f]+)\r\n(\{[^\n]*\}\n)\r\n$/.exec(arrived);
    assert.ok(match, `one chunk per message, got ${JSON.stringify(arrived)}`);
    assert.equal(parseInt(match[1]!, 16), Buffer.byteLength(match[2]!));
  }
});

test('SSE framing: retry hint, id-only start, event names, and multi-line data split into data: lines', async (t) => {
  const hub = await startHub({ http: { retryMs: 1234, retryJitter: 0 } });
  t.after(() => hub.close());
  const reader = await StreamReader.open(`${hub.url}/sub/frames`, { Accept: 'text/event-stream' });
  t.after(() => reader.close());
  assert.equal(reader.status, 200);
  assert.match(String(reader.res.headers['content-type']), /^text\/event-stream/);
  assert.equal(reader.res.headers['x-accel-buffering'], 'no');
  assert.match(String(reader.res.headers['cache-control']), /no-transform/);
  assert.equal(reader.res.headers['transfer-encoding'], 'chunked');
  await waitFor(() => hub.hub.subscriberCount('frames') === 1);
  await publish(hub.url, 'frames', 'line one\nline two\r\nline three\rline four', 'note');
  await publish(hub.url, 'frames', 'data: not a field\n\nid: nope');
  await reader.waitFor((r) => r.events().filter((e) => e.data !== undefined).length >= 2);
  const events = reader.events();
  assert.equal(events[0]!.retry, '1234');
  assert.match(events[1]!.id!, /^frames~[A-Za-z0-9]+~0$/, 'the starting position, before any message');
  assert.equal(events[1]!.data, undefined);
  const [first, second] = events.filter((e) => e.data !== undefined);
  assert.equal(first!.event, 'note');
  assert.equal(first!.data, 'line one\nline two\nline three\nline four');
  assert.match(first!.id!, /~1$/);
  assert.equal(second!.data, 'data: not a field\n\nid: nope', 'published text cannot forge SSE fields');
  assert.match(second!.id!, /~2$/);
});

test('quiet SSE and stream connections get heartbeats from the shared sweep', async (t) => {
  const hub = await startHub({ http: { heartbeatMs: 300 } });
  t.after(() => hub.close());
  const sse = await StreamReader.open(`${hub.url}/sub/quiet`);
  const stream = await StreamReader.open(`${hub.url}/sub/quiet?transport=stream`);
  t.after(() => {
    sse.close();
    stream.close();
  });
  await sse.waitFor((r) => (r.text.match(/^:\n\n/gm) ?? []).length >= 2, 5000, 'two SSE heartbeats');
  await stream.waitFor((r) => r.json().filter((l) => l.type === 'heartbeat').length >= 2, 5000, 'two stream heartbeats');
});

test('long-poll answers at once when messages exist after the cursor, and holds otherwise', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const a = await publish(hub.url, 'lp', 'one');
  await publish(hub.url, 'lp', 'two', 'greeting');
  const immediate = await httpRequest(`${hub.url}/sub/lp?since=${a.id}`, { headers: { Accept: 'application/json' } });
  assert.equal(immediate.status, 200);
  assert.match(String(immediate.headers['content-type']), /^application\/json/);
  assert.equal(immediate.headers['cache-control'], 'no-store');
  const body = immediate.json<{ messages: { channel: string; id: string; event?: string; data: string }[]; cursor: string }>();
  assert.deepEqual(body.messages.map(({ channel, event, data }) => ({ channel, event, data })), [{ channel: 'lp', event: 'greeting', data: 'two' }]);
  assert.equal(body.cursor, body.messages[0]!.id);

  const held = httpRequest(`${hub.url}/sub/lp?transport=poll&since=${body.cursor}`);
  await waitFor(() => hub.hub.subscriberCount('lp') === 1, 5000, 'the poll to be held');
  await publish(hub.url, 'lp', 'three');
  const woken = (await held).json<{ messages: { data: string }[]; cursor: string }>();
  assert.deepEqual(woken.messages.map((m) => m.data), ['three']);
  assert.equal(hub.hub.subscriberCount('lp'), 0, 'an answered poll leaves nothing subscribed');
});

test('a long-poll with nothing to say answers after its timeout with an empty batch and the same cursor', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const { id } = await publish(hub.url, 'idle', 'x');
  const started = Date.now();
  const res = await httpRequest(`${hub.url}/sub/idle?transport=poll&since=${id}&timeout=0.5`);
  assert.ok(Date.now() - started >= 450, 'held until the timeout');
  assert.deepEqual(res.json(), { messages: [], cursor: id });
  const fromNow = (await httpRequest(`${hub.url}/sub/idle?transport=poll&timeout=0`)).json<{ messages: unknown[]; cursor: string }>();
  assert.deepEqual(fromNow, { messages: [], cursor: id }, 'without a cursor: starts from now, and says where that is');
  assert.equal(hub.hub.subscriberCount('idle'), 0);
});

test('a long-poll over two channels gets what both published in one answer and a cursor for both', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const start = (await httpRequest(`${hub.url}/sub?channel=x&channel=y&transport=poll&timeout=0`)).json<{ cursor: string }>();
  assert.match(start.cursor, /^x~[A-Za-z0-9]+~0,y~[A-Za-z0-9]+~0$/);
  await hub.hub.publish('y', 'y1');
  await hub.hub.publish('x', 'x1');
  const body = (await httpRequest(`${hub.url}/sub?channel=x&channel=y&transport=poll&since=${start.cursor}`)).json<{
    messages: { channel: string; data: string }[];
    cursor: string;
  }>();
  assert.deepEqual(body.messages.map((m) => m.data).sort(), ['x1', 'y1']);
  assert.match(body.cursor, /^x~[A-Za-z0-9]+~1,y~[A-Za-z0-9]+~1$/);
});

test('publish answers 201 with the id and the subscriber count; /channels reports the channel', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const reader = await StreamReader.open(`${hub.url}/sub/info?transport=stream`);
  t.after(() => reader.close());
  await waitFor(() => hub.hub.subscriberCount('info') === 1);
  const res = await httpRequest(`${hub.url}/pub/info`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"n":1}' });
  assert.equal(res.status, 201);
  const published = res.json<{ channel: string; id: string; subscribers: number }>();
  assert.equal(published.channel, 'info');
  assert.match(published.id, /^info~[A-Za-z0-9]+~1$/);
  assert.equal(published.subscribers, 1);
  const fromCurl = await httpRequest(`${hub.url}/pub/info`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'a=b&c' });
  assert.equal(fromCurl.status, 201, 'curl -d works as it is');
  const info = (await httpRequest(`${hub.url}/channels/info`)).json<{ subscribers: number; last: string; history: { messages: number; bytes: number } }>();
  assert.deepEqual(info, { channel: 'info', epoch: published.id.split('~')[1], subscribers: 1, last: fromCurl.json<{ id: string }>().id, history: { messages: 2, bytes: 12, oldestSeq: 1 } });
  const health = await httpRequest(`${hub.url}/healthz`);
  assert.equal(health.status, 200);
  assert.equal(health.json<{ status: string }>().status, 'ok');
});

test('a subscriber that stops reading is closed once its queue passes the bound; the others keep receiving', async (t) => {
  const hub = await startHub({ http: { maxQueueBytes: 64 * 1024 } });
  t.after(() => hub.close());
  const healthy = await StreamReader.open(`${hub.url}/sub/flood?transport=stream`);
  t.after(() => healthy.close());
  // A raw client with a tiny receive window that never reads.
  const stalled = connect({ port: hub.port, host: '127.0.0.1' });
  t.after(() => stalled.destroy());
  stalled.pause();
  let stalledClosed = false;
  stalled.on('close', () => (stalledClosed = true));
  stalled.write('GET /sub/flood?transport=stream HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => hub.hub.subscriberCount('flood') === 2, 5000, 'both subscribers');
  const big = 'z'.repeat(60 * 1024);
  const closedBefore = hub.hub.counters.subscriptionsClosed;
  for (let i = 0; i < 400 && hub.hub.subscriberCount('flood') === 2; i++) {
    await hub.hub.publish('flood', `${i}:${big}`);
    await new Promise((r) => setImmediate(r));
  }
  await waitFor(() => hub.hub.subscriberCount('flood') === 1, 10_000, 'the slow subscriber to be closed');
  assert.equal(hub.hub.counters.subscriptionsClosed, closedBefore + 1);
  await hub.hub.publish('flood', 'after');
  await healthy.waitFor((r) => r.text.includes('"data":"after"'), 10_000, 'the healthy subscriber to keep receiving');
  stalled.resume();
  await waitFor(() => stalledClosed, 10_000, 'the stalled socket to be closed');
});

test('a message is encoded once and the same Buffer goes to every subscriber of a group', async () => {
  const hub = new Hub(new MemoryBroker());
  const seen: Buffer[][] = [[], [], []];
  const sink = (i: number): Sink => ({
    encoder: sseEncoder,
    push: (frames) => seen[i]!.push(frames),
    gap: () => {},
    live: () => {},
    end: () => {},
  });
  for (let i = 0; i < 3; i++) (await hub.subscribe(['shared'], null)).start(sink(i));
  await hub.publish('shared', 'hello');
  await hub.publish('shared', 'again');
  hub.flush();
  assert.equal(seen[0]!.length, 1, 'two publishes in one turn of the loop go out as one write');
  assert.ok(seen[0]![0] === seen[1]![0] && seen[1]![0] === seen[2]![0], 'one Buffer object for all');
  assert.match(seen[0]![0]!.toString(), /data: hello\n\n\r\n[0-9a-f]+\r\nid: shared~\w+~2\ndata: again/);
  assert.equal(hub.counters.delivered, 6);
});

test('a subscription pipelined behind a held long-poll starts once the poll is answered, and misses nothing', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const socket = connect(hub.port, '127.0.0.1');
  t.after(() => socket.destroy());
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => (text += d));
  socket.write(
    'GET /sub/piped?transport=poll&timeout=0.5 HTTP/1.1\r\nHost: x\r\n\r\n' + 'GET /sub/piped?transport=stream HTTP/1.1\r\nHost: x\r\n\r\n',
  );
  await waitFor(() => hub.hub.subscriberCount('piped') === 2, 5000, 'both requests to subscribe');
  // Published while the stream still waits for its turn on the socket: the poll gets it, and so must the stream.
  await hub.hub.publish('piped', 'early');
  await waitFor(() => (text.match(/"data":"early"/g) ?? []).length === 2, 5000, 'both responses to carry the message');
  await hub.hub.publish('piped', 'later');
  await waitFor(() => text.includes('"data":"later"'), 5000, 'the stream to stay live');
  const [first, second] = text.split(/(?=HTTP\/1\.1 200)/);
  assert.match(first!, /application\/json/);
  assert.match(second!, /application\/x-ndjson/);
});
