import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitFor } from '../helpers/hub.js';
import { RawChunkedRequest } from '../helpers/raw-chunked.js';
import { startNodeOrigin, startProxy } from './helpers.js';

/** The seed's views as a node:http origin: / then /stage/?n=1..3 then /stage_last/, a second apart. */
async function seedOrigin(delay = '1') {
  return startNodeOrigin((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const n = Number(url.searchParams.get('n') ?? '0');
    if (url.pathname === '/') {
      res.writeHead(200, {
        'Content-Type': 'text/html',
        'Set-Cookie': 'stage=0; Path=/',
        'Kometa-Defer': `${delay}; next="/stage/?n=1"`,
      });
      res.end('First content<br />');
    } else if (url.pathname === '/stage/') {
      res.writeHead(200, {
        'Set-Cookie': `stage=${n}`,
        'Kometa-Defer': `${delay}; next="${n < 3 ? `/stage/?n=${n + 1}` : `/stage_last/?n=${n + 1}`}"`,
      });
      res.end(`stage${n}<br />[cookie ${req.headers.cookie}]`);
    } else {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(`last_stage${n}<br />`);
    }
  });
}

test('Kometa-Defer: one chunked response, a chunk per stage, each stage at least its delay after the one before; ' +
  'status and headers from the first', async (t) => {
  const origin = await seedOrigin();
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const request = new RawChunkedRequest(stack.port, '/', { headers: { Cookie: 'user=ann' } });
  const response = await request.response;
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('content-type'), 'text/html', "the first response's headers");
  assert.equal(response.headers.get('kometa-defer'), undefined);
  assert.ok(response.complete, 'the response ends with the last chunk');
  assert.deepEqual(
    response.chunks.map((c) => c.data),
    [
      'First content<br />',
      'stage1<br />[cookie user=ann; stage=0]',
      'stage2<br />[cookie user=ann; stage=1]',
      'stage3<br />[cookie user=ann; stage=2]',
      'last_stage4<br />',
    ],
  );
  response.chunks.forEach((chunk, i) => {
    assert.ok(
      chunk.at - response.sentAt >= i * 1000 - 5,
      `chunk ${i} came ${(chunk.at - response.sentAt).toFixed(0)} ms after the request`,
    );
  });
  assert.equal(stack.proxy.counters.stages, 4);
});

test('a client that leaves between stages causes no further origin requests and leaves nothing behind', async (t) => {
  const origin = await seedOrigin('1');
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const request = new RawChunkedRequest(stack.port, '/');
  await request.waitForChunks(2);
  request.abort();
  await waitFor(() => stack.proxy.activeCount === 0, 5000, 'the session to end');
  assert.equal(stack.proxy.wheel.size, 0, 'no stage timer left');
  const hitsThen = origin.hits.get('/stage/') ?? 0;
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(origin.hits.get('/stage/') ?? 0, hitsThen, 'no stage requested after the client left');
  assert.equal(origin.hits.get('/stage_last/'), undefined);
  assert.deepEqual(stack.errors, [], 'a client leaving is not an error');
});

test('a client that leaves a held response or stream leaves no subscription and no timer', async (t) => {
  const origin = await startNodeOrigin((req, res) => {
    res.writeHead(200, {
      'Grip-Hold': req.url === '/stream' ? 'stream' : 'response',
      'Grip-Channel': 'held',
      'Grip-Keep-Alive': 'x; timeout=20',
    });
    res.end('');
  });
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const clients = [];
  for (let i = 0; i < 20; i++) clients.push(new RawChunkedRequest(stack.port, i % 2 === 0 ? '/stream' : '/poll'));
  await waitFor(() => stack.hub.subscriberCount('held') === 20, 5000, '20 holds');
  assert.ok(stack.proxy.wheel.size >= 20);
  for (const client of clients) client.abort();
  await waitFor(
    () => stack.proxy.activeCount === 0 && stack.hub.channelCount === 0,
    5000,
    'every hold to be cleaned up',
  );
  assert.equal(stack.proxy.wheel.size, 0);
  assert.equal(stack.hub.liveSubscriptions.size, 0);
});

test("Grip-Link rel=next without a hold appends the next resource's body (Pushpin's next links)", async (t) => {
  const origin = await startNodeOrigin((req, res) => {
    if (req.url === '/first') {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Grip-Link': '</second>; rel=next' });
      res.end('hello\n');
    } else {
      res.end('world\n');
    }
  });
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const response = await new RawChunkedRequest(stack.port, '/first').response;
  assert.equal(response.chunks.map((c) => c.data).join(''), 'hello\nworld\n');
  assert.equal(response.headers.get('grip-link'), undefined);
});
