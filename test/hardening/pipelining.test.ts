import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpRequest, startHub } from '../helpers/hub.js';
import { RawClient } from './raw.js';

/*
 * Requests pipelined behind an endless response (SSE, chunked stream) can
 * never be answered on that connection, so they must not be acted on: the
 * stream says `Connection: close` and nothing behind it runs.
 */
const post = (channel: string, body: string) =>
  `POST /pub/${channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ` +
    `${Buffer.byteLength(body)}\r\n\r\n${body}`;

for (const [transport, query] of [
  ['SSE', ''],
  ['stream', '?transport=stream'],
] as const) {
  test(`publishes pipelined behind a ${transport} subscription are not executed`, async () => {
    const hub = await startHub();
    const client = await RawClient.open(hub.port);
    const channel = `pipe.${transport}`;
    try {
      client.send(
        `GET /sub/${channel}${query} HTTP/1.1\r\nHost: ` +
          `127.0.0.1\r\n\r\n${post(channel, 'pipelined-1')}${post(channel, 'pipelined-2')}`,
      );
      await client.until((c) => c.head !== '' && hub.hub.subscriberCount(channel) === 1, 'the stream to open');
      assert.match(client.head, /\r\nConnection: close/i, 'the stream says the connection ends with it');
      // A publish from elsewhere, then a round trip, so anything pipelined would have run by now.
      const marker = await httpRequest(`${hub.url}/pub/${channel}`, { method: 'POST', body: 'marker' });
      assert.equal(marker.status, 201);
      await client.until((c) => c.body.includes('marker'), 'the marker');
      const info = (await httpRequest(`${hub.url}/channels/${channel}`)).json<{
        last: string;
        history: { messages: number };
      }>();
      assert.equal(info.history.messages, 1, 'only the marker was published');
      assert.ok(!client.body.includes('pipelined'), 'nothing pipelined reached the stream');
      assert.doesNotMatch(client.body, /HTTP\/1\.1 201/, 'no answer was written into the stream');
    } finally {
      client.close();
      await hub.close();
    }
  });
}

test('a WebSocket upgrade pipelined behind SSE is not acted on', async () => {
  const hub = await startHub();
  const client = await RawClient.open(hub.port);
  try {
    client.send(
      'GET /sub/pipe.ws HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' +
        'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: ' +
          '13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    await client.until((c) => c.head !== '' && hub.hub.subscriberCount('pipe.ws') === 1, 'the stream to open');
    await hub.hub.publish('pipe.ws', 'after');
    await client.until((c) => c.body.includes('after'), 'a message after the upgrade request');
    assert.doesNotMatch(client.body, /101 Switching Protocols/);
    assert.equal(hub.server.webSocket.connectionCount, 0);
  } finally {
    client.close();
    await hub.close();
  }
});

test('short requests pipelined on one connection are all answered, in order', async () => {
  const hub = await startHub();
  const client = await RawClient.open(hub.port);
  try {
    client.send(
      `${post('pipe.short', 'one')}GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${post('pipe.short', 'two')}`,
    );
    await client.until((c) => (c.text.match(/HTTP\/1\.1 \d{3}/g) ?? []).length === 3, 'three answers');
    assert.deepEqual(client.text.match(/HTTP\/1\.1 \d{3}/g), ['HTTP/1.1 201', 'HTTP/1.1 200', 'HTTP/1.1 201']);
    assert.match(client.text, /"id":"pipe\.short~[^~]+~1"[\s\S]*"status":"ok"[\s\S]*"id":"pipe\.short~[^~]+~2"/);
  } finally {
    client.close();
    await hub.close();
  }
});
