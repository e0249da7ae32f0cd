import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import WebSocket from 'ws';
import {
  Kometa,
  type KometaClientError,
  type KometaOptions,
  type KometaPresence,
  type SubscribeOptions,
} from '../../src/client/index.js';
import { publish, startHub, waitFor } from '../helpers/hub.js';
import { sleep, trackSockets } from './helpers.js';

const TRANSPORTS = ['websocket', 'sse', 'poll'] as const;
type Transport = (typeof TRANSPORTS)[number];

/** A client whose connections can be refused for a while, as if the network were down (fetch and WebSocket). */
function blockable(transport: Transport): { options: KometaOptions; block(on: boolean): void } {
  let blocked = false;
  const guardedFetch: typeof fetch = (input, init) =>
    blocked ? Promise.reject(new TypeError('network down')) : fetch(input, init);
  class GuardedWebSocket extends WebSocket {
    constructor(url: string) {
      // Port 1 refuses the connection: the same failure a dropped network gives.
      super(blocked ? url.replace(/:\d+\//, ':1/') : url);
    }
  }
  return {
    options: {
      transports: [transport],
      backoff: { baseMs: 50, maxMs: 300 },
      fetch: guardedFetch,
      WebSocket: GuardedWebSocket,
      pollTimeoutSeconds: 1,
    },
    block: (on) => (blocked = on),
  };
}

/** What one subscription gets, in order: `join:<client>`, `leave:<client>`, `message:<data>`, `error:<code>`. */
function watch(seen: string[], presence = true): SubscribeOptions {
  const member = (e: KometaPresence) => seen.push(`${e.type}:${e.member.client}`);
  return {
    presence,
    onJoin: member,
    onLeave: member,
    onMessage: (m) => seen.push(`message:${m.data}`),
    onError: (e) => seen.push(`error:${e.code}`),
  };
}

for (const transport of TRANSPORTS) {
  test(`${transport}: presence: true gets joins and leaves with the member, in order with the messages`, async (t) => {
    const hub = await startHub({ presence: { graceMs: 300, events: true } });
    t.after(() => hub.close());
    const ann = new Kometa(hub.url, { transports: [transport], WebSocket, clientId: 'ann' });
    t.after(() => ann.close());
    const seen: string[] = [];
    const joins: KometaPresence[] = [];
    const plain: string[] = [];
    ann.subscribe('room', { ...watch(seen), onJoin: (e) => (joins.push(e), seen.push(`join:${e.member.client}`)) });
    // A second handler of the same channel that did not ask: messages only.
    ann.subscribe('room', { onMessage: (m) => plain.push(`message:${m.data}`) });
    await waitFor(() => seen.length === 1, 5000, 'its own join');
    const bob = new Kometa(hub.url, { transports: ['sse'], clientId: 'bob' });
    bob.subscribe('room', {});
    await waitFor(() => seen.length === 2, 5000, "bob's join");
    await publish(hub.url, 'room', 'hi');
    await waitFor(() => seen.length === 3, 5000, 'the message');
    bob.close();
    await waitFor(() => seen.length === 4, 5000, "bob's leave after the grace period");
    assert.deepEqual(seen, ['join:ann', 'join:bob', 'message:hi', 'leave:bob']);
    assert.deepEqual(plain, ['message:hi']);
    const hubTransport = { websocket: 'ws', sse: 'sse', poll: 'poll' }[transport];
    const first = joins[0]!;
    assert.equal(first.channel, 'room');
    assert.match(first.id, /^room~[^~]+~1$/);
    assert.deepEqual({ ...first.member, since: '' }, { client: 'ann', user: null, info: null, transport: hubTransport,
      since: '' });
    assert.ok(!Number.isNaN(Date.parse(first.member.since)));
    assert.equal(joins[1]!.member.transport, 'sse');
  });

  test(`${transport}: after a reconnect the subscription gets the joins it missed, once, and none twice`, async (t) => {
    // A long grace: the client is away for about a second and must not leave meanwhile.
    const hub = await startHub({ presence: { graceMs: 10_000, events: true } });
    t.after(() => hub.close());
    const sockets = trackSockets(hub.server.server);
    const link = blockable(transport);
    const ann = new Kometa(hub.url, { ...link.options, clientId: 'ann' });
    t.after(() => ann.close());
    const seen: string[] = [];
    const ids: string[] = [];
    ann.subscribe('room', { ...watch(seen), onJoin: (e) => (ids.push(e.id), seen.push(`join:${e.member.client}`)) });
    await waitFor(() => seen.length === 1 && ann.state === 'connected', 5000, 'its own join');
    await publish(hub.url, 'room', 'before');
    await waitFor(() => seen.length === 2, 5000, 'the first message');

    link.block(true);
    sockets.destroyAll();
    await waitFor(() => ann.state === 'connecting', 5000, 'the client to notice');
    const carl = new EventSource(`${hub.url}/sub/room?client=carl`);
    t.after(() => carl.close());
    await new Promise<void>((resolve) => (carl.onopen = () => resolve()));
    await publish(hub.url, 'room', 'during');
    await sleep(500);
    link.block(false);
    await waitFor(() => seen.length === 4, 10_000, 'what was missed');
    await publish(hub.url, 'room', 'after');
    await waitFor(() => seen.length === 5, 5000, 'the message after');
    await sleep(300);
    assert.deepEqual(seen, ['join:ann', 'message:before', 'join:carl', 'message:during', 'message:after']);
    assert.equal(new Set(ids).size, ids.length);
  });

  test(`${transport}: a hub without --presence-events: onError says so once, messages go on`, async (t) => {
    const hub = await startHub({ presence: { graceMs: 300 } });
    t.after(() => hub.close());
    const requests: string[] = [];
    const counting: typeof fetch = (input, init) => {
      requests.push(String(input));
      return fetch(input, init);
    };
    const ann = new Kometa(hub.url, { transports: [transport], WebSocket, fetch: counting, backoff: { baseMs: 20 } });
    t.after(() => ann.close());
    const states: string[] = [];
    ann.on('state', (s) => states.push(`${s.state}:${s.reason}`));
    const seen: string[] = [];
    const errors: KometaClientError[] = [];
    ann.subscribe('room', { ...watch(seen), onError: (e) => (errors.push(e), seen.push(`error:${e.code}`)) });
    ann.subscribe('other', { onMessage: (m) => seen.push(`other:${m.data}`) });
    await waitFor(() => errors.length === 1, 5000, 'the refusal');
    assert.equal(errors[0]!.channel, 'room');
    await waitFor(() => hub.hub.subscriberCount('room') === 1, 5000, 'the channel followed without presence');
    await publish(hub.url, 'room', 'hi');
    await publish(hub.url, 'other', 'there');
    await waitFor(() => seen.length === 3, 5000, 'the messages');
    const subscribes = requests.filter((r) => r.includes('/sub')).length;
    await sleep(500);
    assert.deepEqual(seen, ['error:KOMETA_ERR_PRESENCE_EVENTS_OFF', 'message:hi', 'other:there']);
    assert.equal(ann.state, 'connected');
    assert.deepEqual(states, ['connecting:connect', 'connected:open']);
    // It does not keep asking (a long-poll client polls on; the others are quiet once refused).
    if (transport !== 'poll') assert.equal(requests.filter((r) => r.includes('/sub')).length, subscribes);
    assert.ok(requests.filter((r) => r.includes('presence=1')).length <= 1);
    // A later subscription that asks is told at once.
    const late: string[] = [];
    ann.subscribe('room', watch(late));
    await waitFor(() => late.length === 1, 2000, 'the late refusal');
    assert.deepEqual(late, ['error:KOMETA_ERR_PRESENCE_EVENTS_OFF']);
  });
}

test('presence asked for later on a channel already followed, and given up again, without losing messages',
  async (t) => {
    const hub = await startHub({ presence: { graceMs: 300, events: true } });
    t.after(() => hub.close());
    for (const transport of TRANSPORTS) {
      const ann = new Kometa(hub.url, { transports: [transport], WebSocket, clientId: `ann-${transport}` });
      t.after(() => ann.close());
      const messages: string[] = [];
      ann.subscribe('feed', { onMessage: (m) => messages.push(m.data) });
      await waitFor(() => hub.hub.subscriberCount('feed') === 1, 5000, 'the plain subscription');
      await publish(hub.url, 'feed', `${transport}-1`);
      await waitFor(() => messages.length === 1, 5000, `${transport}: the first message`);
      const seen: string[] = [];
      const presence = ann.subscribe('feed', watch(seen));
      await sleep(300);
      const other = new EventSource(`${hub.url}/sub/feed?client=other-${transport}`);
      await waitFor(() => seen.includes(`join:other-${transport}`), 5000, `${transport}: the join`);
      presence.unsubscribe();
      await sleep(300);
      other.close();
      await publish(hub.url, 'feed', `${transport}-2`);
      await waitFor(() => messages.length === 2, 5000, `${transport}: the messages`);
      await sleep(600);
      assert.deepEqual(messages, [`${transport}-1`, `${transport}-2`], transport);
      assert.deepEqual(seen, [`join:other-${transport}`], transport);
      ann.close();
      await waitFor(() => hub.hub.subscriberCount('feed') === 0, 5000, 'everyone gone');
    }
  });
