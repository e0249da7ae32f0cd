import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { type TestHub, httpRequest, startHub } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { openSocket } from '../ws/helpers.js';
import { PUBLISHER_KEY, sleep, token, tokenPolicy } from './helpers.js';

/*
 * A token is honoured until its `exp` plus the documented 5 s of clock skew,
 * on every way in, and not one message is written to a subscriber after
 * that: the grant is checked before each write, not only on the sweep.
 */
const SKEW_MS = 5000;
let hub: TestHub;

before(async () => {
  hub = await startHub({ http: { access: await tokenPolicy(), publishRate: 0 } });
});

after(async () => {
  await hub.close();
});

const nowSeconds = () => Math.floor(Date.now() / 1000);

test('inside the skew window HTTP and WebSocket both accept the token and keep it', async () => {
  const stale = await token(['skew.*'], nowSeconds() - 2);
  const poll = await httpRequest(`${hub.url}/sub/skew.http?transport=poll&timeout=0`, { headers: { Authorization: `Bearer ${stale}` } });
  assert.equal(poll.status, 200, poll.body);
  const socket = await openSocket(hub.url, `/ws?token=${stale}`);
  try {
    socket.send({ type: 'subscribe', channel: 'skew.ws', ref: 1 });
    const frame = await socket.next();
    assert.equal(frame.type, 'subscribed', JSON.stringify(frame));
    // Not closed straight after the handshake: a ping still gets its pong.
    socket.send({ type: 'ping', ref: 2 });
    assert.equal((await socket.next()).type, 'pong');
  } finally {
    await socket.close();
  }
});

test('past the skew window HTTP and the WebSocket handshake both refuse it with 401', async () => {
  const old = await token(['skew.*'], nowSeconds() - 8);
  const poll = await httpRequest(`${hub.url}/sub/skew.http?transport=poll&timeout=0`, { headers: { Authorization: `Bearer ${old}` } });
  assert.equal(poll.status, 401);
  assert.equal(poll.json<{ code: string }>().code, 'KOMETA_ERR_TOKEN_EXPIRED');
  const status = await new Promise<number>((resolve) => {
    const ws = new WebSocket(`${hub.url.replace('http', 'ws')}/ws?token=${old}`);
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('open', () => {
      ws.terminate();
      resolve(101);
    });
    ws.on('error', () => {});
  });
  assert.equal(status, 401);
});

interface Delivered {
  transport: string;
  publishedAt: number;
}

test('no transport delivers a message published after the token ran out', async () => {
  // exp 1 s ago: valid for 3-4 more seconds of skew, time enough to set up on a busy machine.
  const exp = nowSeconds() - 1;
  const limit = exp * 1000 + SKEW_MS;
  const credential = await token(['exp.*'], exp);
  const delivered: Delivered[] = [];
  const record = (transport: string) => (data: string) => delivered.push({ transport, publishedAt: Number(data) });

  const source = new EventSource(`${hub.url}/sub/exp.room?token=${credential}`);
  source.onmessage = (event) => record('sse')(event.data as string);
  const sseEnded = new Promise<void>((resolve) => source.addEventListener('kometa-error', () => resolve()));
  const stream = await StreamReader.open(`${hub.url}/sub/exp.room?transport=stream`, { Authorization: `Bearer ${credential}` });
  const socket = await openSocket(hub.url, `/ws?token=${credential}`);
  socket.send({ type: 'subscribe', channel: 'exp.room' });
  await socket.next('subscribed');
  const polls = (async () => {
    let since = '';
    for (;;) {
      const res = await httpRequest(`${hub.url}/sub/exp.room?transport=poll&timeout=5${since && `&since=${since}`}`, { headers: { Authorization: `Bearer ${credential}` } });
      if (res.status !== 200) return res.status;
      const body = res.json<{ messages: { data: string }[]; cursor: string }>();
      for (const message of body.messages) record('poll')(message.data);
      since = encodeURIComponent(body.cursor);
    }
  })();
  while (hub.hub.subscriberCount('exp.room') < 3) await sleep(5);

  // Publish the wall-clock time as the data, without pause, until every subscriber is gone.
  let published = 0;
  while (hub.hub.subscriberCount('exp.room') > 0 || socket.ws.readyState === WebSocket.OPEN) {
    const res = await httpRequest(`${hub.url}/pub/exp.room`, { method: 'POST', headers: { Authorization: `Bearer ${PUBLISHER_KEY}` }, body: String(Date.now()) });
    assert.equal(res.status, 201, res.body);
    published++;
  }
  for (const frame of socket.frames) if (frame.type === 'message') record('ws')(frame.data as string);
  await sseEnded;
  source.close();
  await stream.waitFor((r) => r.ended);
  for (const line of stream.json<{ type: string; data?: string; code?: string }>()) if (line.type === 'message') record('stream')(line.data!);

  assert.equal(await polls, 401, 'the next poll after expiry is refused');
  assert.equal((await socket.closed).code, 4401);
  assert.ok(stream.json<{ code?: string }>().some((line) => line.code === 'KOMETA_ERR_TOKEN_EXPIRED'), 'the stream says why it ended');
  assert.ok(published > 10, `published ${published}`);
  const late = delivered.filter((d) => d.publishedAt > limit);
  assert.deepEqual(late.map((d) => `${d.transport} +${d.publishedAt - limit} ms`), [], 'messages published after expiry were delivered');
  for (const transport of ['sse', 'stream', 'ws', 'poll']) {
    assert.ok(delivered.some((d) => d.transport === transport), `${transport} got the messages from before expiry`);
  }
});
