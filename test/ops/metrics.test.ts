import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { httpRequest, publish, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { ADMIN, METRICS, startOpsHub } from './helpers.js';

interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/**
 * A strict reader of the Prometheus text format (0.0.4): every line is a
 * comment (# HELP / # TYPE), blank, or `name{label="value",…} value`; every
 * sample belongs to a declared family; throws on anything else.
 */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const helps = new Set<string>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', 'the exposition ends with a newline');
  for (const [i, line] of lines.entries()) {
    if (line === '') continue;
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (comment !== null) {
      if (comment[1] === 'TYPE') {
        assert.match(comment[3]!, /^(counter|gauge|histogram|summary|untyped)$/, `line ${i + 1}: type`);
        assert.ok(!types.has(comment[2]!), `line ${i + 1}: ${comment[2]} typed twice`);
        types.set(comment[2]!, comment[3]!);
      } else helps.add(comment[2]!);
      continue;
    }
    assert.ok(!line.startsWith('#'), `line ${i + 1}: unknown comment ${line}`);
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?[0-9.eE+-]+|NaN|[+-]Inf)(?: -?\d+)?$/.exec(line);
    assert.ok(match, `line ${i + 1} is not a sample: ${line}`);
    const labels: Record<string, string> = {};
    if (match[2] !== undefined && match[2] !== '') {
      const labelText = match[2].replace(/,$/, '');
      const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/gy;
      let consumed = 0;
      for (const m of labelText.matchAll(labelPattern)) {
        labels[m[1]!] = m[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
        consumed = m.index! + m[0].length;
      }
      assert.equal(consumed, labelText.length, `line ${i + 1}: malformed labels ${match[2]}`);
    }
    const name = match[1]!;
    const family = [...types.keys()].find(
      (f) =>
        name === f ||
        ((types.get(f) === 'histogram' || types.get(f) === 'summary') &&
          /^(.*)_(bucket|sum|count)$/.exec(name)?.[1] === f),
    );
    assert.ok(family, `line ${i + 1}: ${name} has no # TYPE`);
    const value = match[3] === '+Inf' ? Infinity : match[3] === '-Inf' ? -Infinity : Number(match[3]);
    assert.ok(!Number.isNaN(value) || match[3] === 'NaN', `line ${i + 1}: value`);
    samples.push({ name, labels, value });
  }
  for (const family of types.keys()) assert.ok(helps.has(family), `${family} has # HELP`);
  return { samples, types };
}

function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found, `${name}${JSON.stringify(labels)} is exported`);
  return found.value;
}

test('/metrics parses as Prometheus text and its counters match what the test did', async (t) => {
  const hub = await startOpsHub(t);
  const sse = await StreamReader.open(`${hub.url}/sub/metrics-a`);
  t.after(() => sse.close());
  const stream = await StreamReader.open(`${hub.url}/sub/metrics-a?transport=stream`);
  t.after(() => stream.close());
  const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/ws`);
  t.after(() => ws.terminate());
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(JSON.stringify({ type: 'subscribe', channel: 'metrics-b' }));
  await waitFor(() => hub.hub.liveSubscriptions.size === 3, 5000, 'three live subscriptions');
  const poll = httpRequest(`${hub.url}/sub/metrics-b?transport=poll&timeout=30`);
  await waitFor(() => hub.server.http.pollCount === 1, 5000, 'the long-poll to be held');

  const before = parsePrometheus(
    (await httpRequest(`${hub.url}/metrics`, { headers: { Authorization: `Bearer ${METRICS}` } })).body,
  ).samples;
  assert.equal(value(before, 'kometa_connections', { transport: 'sse' }), 1);
  assert.equal(value(before, 'kometa_connections', { transport: 'stream' }), 1);
  assert.equal(value(before, 'kometa_connections', { transport: 'ws' }), 1);
  assert.equal(value(before, 'kometa_connections', { transport: 'poll' }), 1);
  assert.equal(value(before, 'kometa_channels'), 2);

  // Three to metrics-a (two subscribers each), two to metrics-b (the WebSocket and the poll); then two bad requests.
  for (const data of ['one', 'two', 'three']) await publish(hub.url, 'metrics-a', data);
  await publish(hub.url, 'metrics-b', 'x');
  await poll;
  await publish(hub.url, 'metrics-b', 'yy');
  await sse.waitFor((r) => r.events().filter((e) => e.data === 'three').length === 1);
  await waitFor(() => hub.hub.counters.delivered === 3 * 2 + 1 + 1 + 1, 5000, 'every delivery');
  assert.equal((await httpRequest(`${hub.url}/sub/bad%20channel`)).status, 400);
  assert.equal((await httpRequest(`${hub.url}/pub/x`, { method: 'GET' })).status, 405);

  const response = await httpRequest(`${hub.url}/metrics`, { headers: { Authorization: `Bearer ${ADMIN}` } });
  assert.equal(response.status, 200);
  assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parsePrometheus(response.body);
  const published =
    value(samples, 'kometa_messages_published_total') - value(before, 'kometa_messages_published_total');
  assert.equal(published, 5);
  assert.equal(types.get('kometa_messages_published_total'), 'counter');
  assert.equal(value(samples, 'kometa_messages_delivered_total'), 9);
  assert.equal(value(samples, 'kometa_published_bytes_total'), 'onetwothreexyy'.length);
  assert.ok(value(samples, 'kometa_delivered_bytes_total') > 9 * 3, 'framed bytes are counted');
  assert.ok(value(samples, 'kometa_errors_total', { code: 'KOMETA_ERR_CHANNEL_NAME' }) >= 1);
  assert.ok(value(samples, 'kometa_errors_total', { code: 'KOMETA_ERR_METHOD' }) >= 1);
  assert.equal(value(samples, 'kometa_broker_up'), 1);
  assert.equal(types.get('kometa_publish_to_deliver_seconds'), 'histogram');
  assert.ok(value(samples, 'kometa_fanout_duration_seconds_count') >= 4, 'one observation per fan-out');
  assert.equal(
    value(samples, 'kometa_publish_to_deliver_seconds_bucket', { le: '+Inf' }),
    value(samples, 'kometa_publish_to_deliver_seconds_count'),
  );
  // The default process metrics are there too.
  assert.ok(value(samples, 'process_cpu_user_seconds_total') >= 0);
  assert.ok(value(samples, 'nodejs_eventloop_lag_seconds') >= 0);
});

test('a slow consumer that is closed is counted by transport', async (t) => {
  const hub = await startOpsHub(t, { maxQueueBytes: 64 * 1024 });
  // A subscriber that never reads: the hub's queue for it grows until it is cut.
  const { connect } = await import('node:net');
  const socket = connect(hub.port, '127.0.0.1');
  t.after(() => socket.destroy());
  socket.pause();
  socket.write('GET /sub/slow HTTP/1.1\r\nHost: x\r\n\r\n');
  await waitFor(() => hub.hub.subscriberCount('slow') === 1, 5000, 'the subscriber');
  const big = 'x'.repeat(60_000);
  for (let i = 0; i < 200 && hub.ops.tally.dropTotal === 0; i++) await publish(hub.url, 'slow', big);
  await waitFor(() => hub.ops.tally.dropTotal === 1, 5000, 'the slow consumer to be closed');
  const { samples } = parsePrometheus(
    (await httpRequest(`${hub.url}/metrics`, { headers: { Authorization: `Bearer ${ADMIN}` } })).body,
  );
  assert.equal(value(samples, 'kometa_slow_consumer_closes_total', { transport: 'sse' }), 1);
});
