import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccessPolicy } from '../../src/auth/access.js';
import { Kometa, type StateChange } from '../../src/client/index.js';
import { startHub, waitFor } from '../helpers/hub.js';
import { SECRET, token } from '../backend/helpers.js';
import { sleep } from './helpers.js';

async function hubWithTokens() {
  const access = await AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: 'pub-key' });
  return startHub({ http: { access } });
}

/** A fetch that counts the requests it makes. */
function counted(): { fetch: typeof fetch; count: () => number } {
  let n = 0;
  return { fetch: (input, init) => (n++, fetch(input, init)), count: () => n };
}

for (const transport of ['sse', 'poll'] as const) {
  for (const from of ['now', 'start'] as const) {
    test(`${transport}, from ${from}: a hub that wants a token and a client with none: it stops and says why, ` +
      'instead of retrying forever', async (t) => {
      const hub = await hubWithTokens();
      t.after(() => hub.close());
      const requests = counted();
      const client = new Kometa(hub.url, { transports: [transport], fetch: requests.fetch, backoff: { baseMs: 10 } });
      t.after(() => client.close());
      const states: StateChange[] = [];
      client.on('state', (s) => states.push(s));
      client.subscribe('room', { from });
      await waitFor(() => states.at(-1)?.state === 'disconnected', 5000, 'the client to stop');
      const made = requests.count();
      await sleep(500);
      assert.equal(requests.count(), made, 'no request after it stopped');
      assert.ok(made <= 3, `${made} requests`);
      const last = states.at(-1)!;
      assert.equal(last.reason, 'unauthorized');
      assert.equal(last.code, 'KOMETA_ERR_UNAUTHORIZED');
      assert.match(last.detail ?? '', /401/);
      assert.throws(() => client.subscribe('other', {}), { code: 'KOMETA_CLIENT_CLOSED' });
    });
  }

  test(`${transport}: a 401 with a token function is retried with a fresh token, and then connects`, async (t) => {
    const hub = await hubWithTokens();
    t.after(() => hub.close());
    const good = await token({ subscribe: ['room'] }, 'u1');
    let calls = 0;
    // The first two tokens are refused (e.g. expired); the function then fetches a good one.
    const client = new Kometa(hub.url, {
      transports: [transport],
      backoff: { baseMs: 10, maxMs: 50 },
      token: () => (++calls <= 2 ? 'not-a-valid-token' : good),
    });
    t.after(() => client.close());
    const reasons: string[] = [];
    client.on('state', (s) => reasons.push(`${s.state}:${s.reason}`));
    client.subscribe('room', {});
    await waitFor(() => client.state === 'connected' && hub.hub.subscriberCount('room') === 1, 10_000, 'connected');
    assert.ok(calls >= 3, `${calls} token calls`);
    // Refused while connecting: it stays 'connecting' (no state event), then connects.
    assert.deepEqual(reasons, ['connecting:connect', 'connected:open']);
  });
}

test('sse: a channel the token may not follow is refused through onError, not retried forever', async (t) => {
  const hub = await hubWithTokens();
  t.after(() => hub.close());
  const requests = counted();
  const client = new Kometa(hub.url, {
    transports: ['sse'],
    token: await token({ subscribe: ['mine'] }, 'u1'),
    fetch: requests.fetch,
    backoff: { baseMs: 10, maxMs: 50 },
  });
  t.after(() => client.close());
  const errors: string[] = [];
  client.subscribe('not-mine', { onError: (e) => errors.push(`${e.code} ${e.status}`) });
  const got: string[] = [];
  client.subscribe('mine', { onMessage: (m) => got.push(m.data) });
  await waitFor(() => errors.length === 1 && hub.hub.subscriberCount('mine') === 1, 5000, 'the refusal');
  assert.deepEqual(errors, ['KOMETA_ERR_FORBIDDEN 403']);
  const made = requests.count();
  await sleep(500);
  assert.equal(requests.count(), made, 'no request after the refusal');
  assert.equal(client.state, 'connected');
  assert.deepEqual([...client.positions().keys()], ['mine']);
});

test('a fixed token string the hub refuses is no way to a new one either: the client stops', async (t) => {
  const hub = await hubWithTokens();
  t.after(() => hub.close());
  const client = new Kometa(hub.url, { transports: ['sse'], token: 'not-a-valid-token', backoff: { baseMs: 10 } });
  t.after(() => client.close());
  const states: StateChange[] = [];
  client.on('state', (s) => states.push(s));
  client.subscribe('room', {});
  await waitFor(() => states.at(-1)?.state === 'disconnected', 5000, 'the client to stop');
  assert.equal(states.at(-1)!.reason, 'unauthorized');
});
