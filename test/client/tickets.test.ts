import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { AccessPolicy } from '../../src/auth/access.js';
import { Kometa, type KometaClientError, type KometaMessage } from '../../src/client/index.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';

const fast = { backoff: { baseMs: 50, maxMs: 500 }, WebSocket } as const;

for (const transport of ['websocket', 'sse', 'poll'] as const) {
  test(`kometa/client subscribes with a ticket from the backend (${transport})`, async (t) => {
    const hub = await startHub({ http: { access: await AccessPolicy.create({ publisherKey: 'backend-key' }) } });
    t.after(() => hub.close());
    let minted = 0;
    // What an app's backend does for its page: mint a ticket with the publisher key.
    const ticket = async () => {
      minted++;
      const res = await httpRequest(`${hub.url}/tickets`, {
        method: 'POST',
        headers: { Authorization: 'Bearer backend-key', 'Content-Type': 'application/json' },
        body: JSON.stringify({ subscribe: ['room.*'] }),
      });
      return res.json<{ ticket: string }>().ticket;
    };
    const client = new Kometa(hub.url, { ...fast, transports: [transport], ticket });
    t.after(() => client.close());
    const got: KometaMessage[] = [];
    client.subscribe('room.1', { onMessage: (m) => got.push(m) });
    await waitFor(() => hub.hub.subscriberCount('room.1') === 1, 5000, 'the subscription');
    await hub.hub.publish('room.1', 'for ticket holders');
    await waitFor(() => got.some((m) => m.data === 'for ticket holders'), 5000, 'the message');
    assert.ok(minted >= 1);

    if (transport !== 'websocket') return;
    // Without a ticket (or token) the same subscription is refused.
    const refused: KometaClientError[] = [];
    const anonymous = new Kometa(hub.url, { ...fast, transports: [transport] });
    t.after(() => anonymous.close());
    anonymous.subscribe('room.1', { onError: (e) => refused.push(e) });
    await waitFor(() => refused.length > 0, 5000, 'the refusal');
    assert.equal(refused[0]!.code, 'KOMETA_ERR_UNAUTHORIZED');
  });
}

test('withCredentials: every request the client makes carries credentials: include (cookies to a hub on another ' +
  'origin)', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const seen: (string | undefined)[] = [];
  const recording: typeof fetch = (input, init) => {
    seen.push(init?.credentials);
    return fetch(input, init);
  };
  for (const transport of ['sse', 'poll'] as const) {
    const client = new Kometa(hub.url, { ...fast, transports: [transport], fetch: recording, withCredentials: true });
    t.after(() => client.close());
    const got: string[] = [];
    client.subscribe(`c.${transport}`, { onMessage: (m) => got.push(m.data) });
    await waitFor(() => hub.hub.subscriberCount(`c.${transport}`) === 1, 5000);
    await client.publish(`c.${transport}`, 'x');
    await waitFor(() => got.length === 1);
    client.close();
  }
  assert.ok(seen.length >= 4);
  assert.deepEqual([...new Set(seen)], ['include']);
  // And without the option, the client leaves fetch's default alone.
  const plain: (string | undefined)[] = [];
  const client = new Kometa(hub.url, {
    ...fast,
    transports: ['poll'],
    fetch: (input, init) => (plain.push(init?.credentials), fetch(input, init)),
  });
  t.after(() => client.close());
  client.subscribe('d');
  await waitFor(() => plain.length > 0);
  assert.ok(!plain.includes('include'));
});
