import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpRequest, publish, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { publishItems, startNodeOrigin, startProxy } from './helpers.js';

/** An origin whose instructions come from the query: ?hold=response&channel=a,b&timeout=1&prev=… */
async function gripOrigin() {
  return startNodeOrigin((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const q = url.searchParams;
    const headers: Record<string, string> = { 'Content-Type': q.get('type') ?? 'text/plain' };
    if (q.has('hold')) headers['Grip-Hold'] = q.get('hold')!;
    if (q.has('channel')) headers['Grip-Channel'] = q.get('channel')!;
    if (q.has('timeout')) headers['Grip-Timeout'] = q.get('timeout')!;
    if (q.has('keepalive')) headers['Grip-Keep-Alive'] = q.get('keepalive')!;
    if (q.has('link')) headers['Grip-Link'] = q.get('link')!;
    res.writeHead(200, headers);
    res.end(q.get('body') ?? '');
  });
}

test("Grip-Hold: response is answered by the next publish, on either port format, with the origin's headers under " +
  "the item's", async (t) => {
  const origin = await gripOrigin();
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));

  const plain = httpRequest(
    `${stack.url}/poll?hold=response&channel=news&type=application/json&body=${encodeURIComponent('{"timeout":true}')}`,
  );
  await waitFor(() => stack.hub.subscriberCount('news') === 1, 5000, 'the request to be held');
  await publish(stack.controlUrl, 'news', '{"n":1}');
  const first = await plain;
  assert.equal(first.status, 200);
  assert.equal(first.body, '{"n":1}');
  assert.equal(first.headers['content-type'], 'application/json', "the origin's Content-Type");
  assert.equal(first.headers['grip-hold'], undefined, 'Grip-* never reach the client');
  assert.equal(first.headers['content-length'], '7');

  const pushpin = httpRequest(`${stack.url}/poll?hold=response&channel=news&type=application/json`);
  await waitFor(() => stack.hub.subscriberCount('news') === 1, 5000, 'the request to be held');
  const published = await publishItems(stack.controlUrl, [
    { channel: 'news', id: 'a', formats: { 'http-stream': { content: 'not for long-polls' } } },
    {
      channel: 'news',
      id: 'b',
      formats: {
        'http-response': {
          code: 202,
          reason: 'Taken',
          headers: { 'Content-Type': 'text/x-news', 'X-Id': 'b' },
          body: 'item b',
        },
      },
    },
  ]);
  assert.equal(published.status, 200, published.body);
  const second = await pushpin;
  assert.equal(second.status, 202);
  assert.equal(second.body, 'item b', 'the stream-only item passes a response hold by');
  assert.equal(second.headers['content-type'], 'text/x-news');
  assert.equal(second.headers['x-id'], 'b');
  await waitFor(() => stack.hub.channelCount === 0, 2000, 'no subscription left');
});

test("Grip-Timeout: with nothing published, the origin's own response answers after the timeout (not " +
  "before)", async (t) => {
  const origin = await gripOrigin();
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const started = performance.now();
  const response = await httpRequest(`${stack.url}/poll?hold=response&channel=quiet&timeout=1&body=nothing%20yet`);
  assert.ok(performance.now() - started >= 1000, 'held for the whole Grip-Timeout');
  assert.equal(response.status, 200);
  assert.equal(response.body, 'nothing yet');
  assert.equal(stack.hub.channelCount, 0);
});

test('several Grip-Channels: a publish on any of them answers', async (t) => {
  const origin = await gripOrigin();
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const held = httpRequest(`${stack.url}/poll?hold=response&channel=${encodeURIComponent('one, two')}`);
  await waitFor(() => stack.hub.subscriberCount('two') === 1, 5000, 'the hold');
  await publish(stack.controlUrl, 'two', 'from two');
  assert.equal((await held).body, 'from two');
});

test('prev-id: a hold whose origin state is older than the channel is answered at once from history', async (t) => {
  const origin = await gripOrigin();
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  await publishItems(stack.controlUrl, [
    { channel: 'feed', id: 'm1', formats: { 'http-response': { body: 'one' } } },
    { channel: 'feed', id: 'm2', 'prev-id': 'm1', formats: { 'http-response': { body: 'two' } } },
  ]);
  // The origin last saw m1: m2 was published in between, and must not be missed.
  const response = await httpRequest(
    `${stack.url}/poll?hold=response&timeout=5&channel=${encodeURIComponent('feed; prev-id=m1')}`,
  );
  assert.equal(response.body, 'two');

  // The origin is up to date: the request is held for what comes next.
  const held = httpRequest(
    `${stack.url}/poll?hold=response&timeout=5&channel=${encodeURIComponent('feed; prev-id=m2')}`,
  );
  await waitFor(() => stack.hub.subscriberCount('feed') === 1, 5000, 'the hold');
  await publishItems(stack.controlUrl, [
    { channel: 'feed', id: 'm3', 'prev-id': 'm2', formats: { 'http-response': { body: 'three' } } },
  ]);
  assert.equal((await held).body, 'three');

  // A kometa id works as a prev-id too.
  const { id } = await publish(stack.controlUrl, 'feed', 'plain four');
  await publish(stack.controlUrl, 'feed', 'plain five');
  const fromId = await httpRequest(
    `${stack.url}/poll?hold=response&timeout=5&channel=${encodeURIComponent(`feed; prev-id=${id}`)}`,
  );
  assert.equal(fromId.body, 'plain five');
});

test("Grip-Hold: stream sends the origin's body, then each message's http-stream content, until an item closes " +
  "it", async (t) => {
  const origin = await gripOrigin();
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const reader = await StreamReader.open(
    `${stack.url}/events?hold=stream&channel=ticks&body=${encodeURIComponent('[open]\n')}`,
  );
  t.after(() => reader.close());
  assert.equal(reader.status, 200);
  assert.equal(reader.res.headers['transfer-encoding'], 'chunked');
  await reader.waitFor((r) => r.text === '[open]\n', 5000, 'the origin body');
  await waitFor(() => stack.hub.subscriberCount('ticks') === 1, 5000, 'the stream hold');
  await publishItems(stack.controlUrl, [{ channel: 'ticks', formats: { 'http-stream': { content: 'tick 1\n' } } }]);
  await publish(stack.controlUrl, 'ticks', 'plain 2\n');
  await publishItems(stack.controlUrl, [
    { channel: 'ticks', formats: { 'http-response': { body: 'not for streams' } } },
    { channel: 'ticks', formats: { 'http-stream': { 'content-bin': Buffer.from('bin 3\n').toString('base64') } } },
  ]);
  await reader.waitFor((r) => r.text.endsWith('bin 3\n'), 5000, 'three messages');
  assert.equal(reader.text, '[open]\ntick 1\nplain 2\nbin 3\n');
  await publishItems(stack.controlUrl, [{ channel: 'ticks', formats: { 'http-stream': { action: 'close' } } }]);
  await reader.waitFor((r) => r.ended, 5000, 'the close action to end the response');
  assert.equal(reader.text, '[open]\ntick 1\nplain 2\nbin 3\n');
  await waitFor(() => stack.hub.channelCount === 0, 2000, 'no subscription left');
});

test('Grip-Keep-Alive: a quiet stream gets the keep-alive data (cstring-decoded)', async (t) => {
  const origin = await gripOrigin();
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const reader = await StreamReader.open(
    `${stack.url}/events?hold=stream&channel=calm` +
      `&keepalive=${encodeURIComponent('\\n; format=cstring; timeout=1')}&body=x`,
  );
  t.after(() => reader.close());
  const started = performance.now();
  await reader.waitFor((r) => r.text === 'x\n', 5000, 'a keep-alive newline');
  assert.ok(performance.now() - started >= 900, 'not before the stream was idle for about the timeout');
});

test('Grip-Link rel=next on a stream hold: a gap in sequence ids makes the proxy ask the origin through the link ' +
  'and append its answer', async (t) => {
  let recoveries = 0;
  const origin = await startNodeOrigin((req, res) => {
    if (req.url!.startsWith('/recover')) {
      recoveries++;
      // The origin knows what was missed; it answers with it and holds on.
      res.writeHead(200, {
        'Grip-Hold': 'stream',
        'Grip-Channel': 'seq; prev-id=3',
        'Grip-Link': '</recover>; rel=next',
      });
      res.end('[2 from the origin]\n[3 from the origin]\n');
      return;
    }
    res.writeHead(200, {
      'Content-Type': 'text/plain',
      'Grip-Hold': 'stream',
      'Grip-Channel': 'seq; prev-id=0',
      'Grip-Link': '</recover>; rel=next; timeout=3600',
    });
    res.end('[start]\n');
  });
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const reader = await StreamReader.open(`${stack.url}/stream`);
  t.after(() => reader.close());
  await waitFor(() => stack.hub.subscriberCount('seq') === 1, 5000, 'the hold');
  await publishItems(stack.controlUrl, [
    { channel: 'seq', id: '1', 'prev-id': '0', formats: { 'http-stream': { content: '1\n' } } },
  ]);
  await reader.waitFor((r) => r.text.endsWith('1\n'), 5000, 'item 1');
  // Item 2 never reaches the proxy; 3 says it follows 2.
  await publishItems(stack.controlUrl, [
    { channel: 'seq', id: '3', 'prev-id': '2', formats: { 'http-stream': { content: '3\n' } } },
  ]);
  await reader.waitFor((r) => r.text.includes('[3 from the origin]'), 5000, 'the recovery');
  assert.equal(recoveries, 1);
  await waitFor(() => stack.hub.subscriberCount('seq') === 1, 5000, 'held again');
  await publishItems(stack.controlUrl, [
    { channel: 'seq', id: '4', 'prev-id': '3', formats: { 'http-stream': { content: '4\n' } } },
  ]);
  await reader.waitFor((r) => r.text.endsWith('4\n'), 5000, 'item 4');
  assert.equal(reader.text, '[start]\n1\n[2 from the origin]\n[3 from the origin]\n4\n');
});
