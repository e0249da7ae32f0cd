import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { type TestHub, httpRequest, publish, startHub, waitFor } from '../helpers/hub.js';
import { openSocket } from '../ws/helpers.js';

/*
 * One rule for what may be published, whichever way it comes in: data is
 * well-formed Unicode text (no lone surrogates), and a body is sent as it is
 * (no Content-Encoding but identity).
 */
let hub: TestHub;

before(async () => {
  hub = await startHub();
});

after(async () => {
  await hub.close();
});

test('a lone surrogate published over WebSocket is refused like its HTTP twin, and never reaches SSE', async () => {
  const received: string[] = [];
  const source = new EventSource(`${hub.url}/sub/text.ws`);
  source.onmessage = (event) => received.push(event.data as string);
  try {
    await waitFor(() => hub.hub.subscriberCount('text.ws') === 1);
    const socket = await openSocket(hub.url);
    try {
      // JSON escapes let a WebSocket text frame (valid UTF-8) carry a lone surrogate.
      socket.send('{"type":"publish","channel":"text.ws","data":"a\\ud800b","ref":1}');
      const answer = await socket.next();
      assert.equal(answer.type, 'error', JSON.stringify(answer));
      assert.equal(answer.code, 'KOMETA_ERR_BODY_ENCODING');
      assert.equal(answer.ref, 1);
      socket.send('{"type":"publish","channel":"text.ws","data":"after","ref":2}');
      assert.equal((await socket.next()).type, 'published');
    } finally {
      await socket.close();
    }
    await waitFor(() => received.includes('after'), 5000, 'the message after the refused one');
    assert.deepEqual(received, ['after']);
  } finally {
    source.close();
  }
});

test('the same data as HTTP bytes is refused with the same code', async () => {
  // CESU-style bytes for U+D800: not UTF-8.
  const res = await httpRequest(`${hub.url}/pub/text.http`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]) });
  assert.equal(res.status, 400);
  assert.equal(res.json<{ code: string }>().code, 'KOMETA_ERR_BODY_ENCODING');
});

test('the library call refuses a lone surrogate too', async () => {
  await assert.rejects(hub.hub.publish('text.lib', '\udc00'), { code: 'KOMETA_ERR_BODY_ENCODING' });
  assert.equal((await hub.hub.publish('text.lib', 'a pair \ud83d\ude00 is fine')).message.data, 'a pair \ud83d\ude00 is fine');
});

for (const encoding of ['gzip', 'br', 'deflate', 'x-custom']) {
  test(`a publish body labelled Content-Encoding: ${encoding} is refused with 415 and not stored`, async () => {
    const channel = `text.enc.${encoding}`;
    const res = await httpRequest(`${hub.url}/pub/${channel}`, { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Content-Encoding': encoding }, body: encoding === 'gzip' ? gzipSync('hello') : 'hello' });
    assert.equal(res.status, 415, res.body);
    assert.equal(res.json<{ code: string }>().code, 'KOMETA_ERR_MEDIA_TYPE');
    const info = await httpRequest(`${hub.url}/channels/${channel}`);
    assert.equal(info.json<{ last: string | null }>().last, null);
  });
}

test('Content-Encoding: identity is the body as it is', async () => {
  const res = await httpRequest(`${hub.url}/pub/text.identity`, { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Content-Encoding': 'identity' }, body: 'plain' });
  assert.equal(res.status, 201, res.body);
  await publish(hub.url, 'text.identity', 'still fine');
});
