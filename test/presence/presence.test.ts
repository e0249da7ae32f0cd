import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { AccessPolicy } from '../../src/auth/access.js';
import { KometaServer } from '../../src/server/index.js';
import { channelDetail } from '../../src/ops/channel-detail.js';
import type { PresenceEvent, PresenceSnapshot } from '../../src/core/presence.js';
import { httpRequest, startHub, waitFor, type TestHub } from '../helpers/hub.js';
import { SECRET, token, wsFollower } from '../backend/helpers.js';
import { until } from './helpers.js';

const GRACE_MS = 400;


/** An SSE subscriber on a raw socket, so that the test can end it with a TCP RST. */
async function rawSse(hub: TestHub, path: string): Promise<Socket> {
  const socket = connect(hub.port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => {});
  let head = '';
  const opened = new Promise<void>((resolve) =>
    socket.on('data', (chunk: Buffer) => {
      head += chunk.toString();
      if (head.includes('\r\n\r\n')) resolve();
    }),
  );
  socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`);
  await opened;
  assert.match(head, /^HTTP\/1\.1 200/);
  return socket;
}

async function presence(hub: TestHub, channel: string, credential: string, query = ''): Promise<PresenceSnapshot> {
  const res = await httpRequest(`${hub.url}/channels/${channel}/presence${query}`, {
    headers: { Authorization: `Bearer ${credential}` },
  });
  assert.equal(res.status, 200, res.body);
  return res.json<PresenceSnapshot>();
}

async function startProtectedHub(): Promise<TestHub> {
  const access = await AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: 'pub-key' });
  return startHub({ http: { access }, presence: { graceMs: GRACE_MS } });
}

test('2 SSE (u1, u2) + 1 WebSocket (u1): 3 clients, 2 users; an RST leaves once, after the grace', async (t) => {
  const hub = await startProtectedHub();
  t.after(() => hub.close());
  const events: PresenceEvent[] = [];
  for (const name of ['join', 'leave', 'occupied', 'vacated'] as const) hub.hub.on(name, (e) => events.push(e));

  const room = { subscribe: ['room'] };
  const u1 = await token({ ...room, info: { name: 'Ann' } }, 'u1');
  const u2 = await token(room, 'u2');
  const sse = new EventSource(`${hub.url}/sub/room?token=${u1}&client=ann-tab`);
  t.after(() => sse.close());
  await new Promise<void>((resolve) => (sse.onopen = () => resolve()));
  const raw = await rawSse(hub, `/sub/room?token=${u2}&client=bob-tab`);
  const ws = await wsFollower(hub.url, ['room'], `?token=${u1}&client=ann-phone`);
  t.after(() => ws.close());

  await until(async () => (await presence(hub, 'room', u1)).count === 3, 5000, 'three members');
  const seen = await presence(hub, 'room', u2);
  assert.equal(seen.channel, 'room');
  assert.equal(seen.count, 3);
  assert.equal(seen.users, 2);
  assert.equal(seen.next, null);
  const byClient = new Map(seen.members.map((m) => [m.client, m]));
  assert.deepEqual([...byClient.keys()].sort(), ['ann-phone', 'ann-tab', 'bob-tab']);
  assert.equal(byClient.get('ann-tab')!.user, 'u1');
  assert.deepEqual(byClient.get('ann-tab')!.info, { name: 'Ann' });
  assert.equal(byClient.get('ann-tab')!.transport, 'sse');
  assert.equal(byClient.get('ann-phone')!.transport, 'ws');
  assert.equal(byClient.get('bob-tab')!.user, 'u2');
  assert.equal(byClient.get('bob-tab')!.info, null);
  assert.ok(!Number.isNaN(Date.parse(byClient.get('bob-tab')!.since)));

  // The channel's count and the publish answer count members.
  const info = await httpRequest(`${hub.url}/channels/room`, { headers: { Authorization: `Bearer ${u1}` } });
  assert.equal(info.json<{ subscribers: number }>().subscribers, 3);
  const published = await httpRequest(`${hub.url}/pub/room`, {
    method: 'POST',
    headers: { Authorization: 'Bearer pub-key', 'Content-Type': 'text/plain' },
    body: 'hi',
  });
  assert.equal(published.json<{ subscribers: number }>().subscribers, 3);

  // Paged: two, then the rest.
  const first = await presence(hub, 'room', u1, '?limit=2');
  assert.equal(first.members.length, 2);
  assert.equal(first.count, 3);
  assert.notEqual(first.next, null);
  const second = await presence(hub, 'room', u1, `?limit=2&after=${first.next!}`);
  assert.deepEqual(
    [...first.members, ...second.members].map((m) => m.client),
    ['ann-phone', 'ann-tab', 'bob-tab'],
  );
  assert.equal(second.next, null);

  raw.resetAndDestroy();
  const rstAt = performance.now();
  await until(async () => (await presence(hub, 'room', u1)).count === 2, GRACE_MS + 3000, 'the RST member to leave');
  // Not before the grace period: a quick reconnect must not flap.
  assert.ok(performance.now() - rstAt >= GRACE_MS - 50);
  const left = await presence(hub, 'room', u1);
  assert.equal(left.users, 1);
  assert.deepEqual(
    events.map((e) => `${e.event}:${e.member?.client ?? ''}`),
    ['occupied:', 'join:ann-tab', 'join:bob-tab', 'join:ann-phone', 'leave:bob-tab'],
  );
});

test('the presence endpoint needs the right to subscribe, and refuses a bad page', async (t) => {
  const hub = await startProtectedHub();
  t.after(() => hub.close());
  const anonymous = await httpRequest(`${hub.url}/channels/room/presence`);
  assert.equal(anonymous.status, 401);
  const other = await token({ subscribe: ['lobby'] }, 'u3');
  const forbidden = await httpRequest(`${hub.url}/channels/room/presence`, {
    headers: { Authorization: `Bearer ${other}` },
  });
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.json<{ code: string }>().code, 'KOMETA_ERR_FORBIDDEN');
  const reader = await token({ subscribe: ['room'] }, 'u1');
  for (const query of ['?limit=0', '?limit=abc', '?limit=100000', '?after=']) {
    const bad = await httpRequest(`${hub.url}/channels/room/presence${query}`, {
      headers: { Authorization: `Bearer ${reader}` },
    });
    assert.equal(bad.status, 400, query);
    assert.equal(bad.json<{ code: string }>().code, 'KOMETA_ERR_PRESENCE_PARAM');
  }
  const post = await httpRequest(`${hub.url}/channels/room/presence`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${reader}` },
  });
  assert.equal(post.status, 405);
  const empty = await presence(hub, 'room', reader);
  assert.deepEqual(empty, { channel: 'room', count: 0, users: 0, members: [], next: null });
});

test('library mode: occupied, join, leave, vacated on the hub; a reconnect within the grace is neither', async (t) => {
  const hub = await startHub({ presence: { graceMs: GRACE_MS } });
  t.after(() => hub.close());
  const events: string[] = [];
  for (const name of ['join', 'leave', 'occupied', 'vacated'] as const) {
    hub.hub.on(name, (e) => events.push(`${e.event}:${e.member?.client ?? ''}`));
  }
  const open = async (client: string) => {
    const source = new EventSource(`${hub.url}/sub/lobby?client=${client}`);
    await new Promise<void>((resolve) => (source.onopen = () => resolve()));
    return source;
  };
  const first = await open('c1');
  await waitFor(() => events.length === 2, 2000, 'occupied and join');
  first.close();
  // Back before the grace period is over: still the same member.
  const again = await open('c1');
  await new Promise((resolve) => setTimeout(resolve, GRACE_MS * 2));
  assert.deepEqual(events, ['occupied:', 'join:c1']);
  again.close();
  await waitFor(() => events.length === 4, GRACE_MS + 3000, 'leave and vacated');
  assert.deepEqual(events, ['occupied:', 'join:c1', 'leave:c1', 'vacated:']);
});

test('with presence off the hub keeps no members and counts its own subscriptions', async (t) => {
  const hub = await startHub({ presence: { enabled: false } });
  t.after(() => hub.close());
  const source = new EventSource(`${hub.url}/sub/quiet`);
  t.after(() => source.close());
  await new Promise<void>((resolve) => (source.onopen = () => resolve()));
  const off = await httpRequest(`${hub.url}/channels/quiet/presence`);
  assert.equal(off.status, 404);
  const info = await httpRequest(`${hub.url}/channels/quiet`);
  assert.equal(info.json<{ subscribers: number }>().subscribers, 1);
});

test('kometa/server presence(): a ticket\'s user and signed info are what the members list shows', async (t) => {
  const hub = await startProtectedHub();
  t.after(() => hub.close());
  const kometa = new KometaServer({ url: hub.url, publisherKey: 'pub-key' });
  const { ticket } = await kometa.mintTicket({ subscribe: ['room'], user: 'u5', info: { name: 'Eve', avatar: 3 } });
  const source = new EventSource(`${hub.url}/sub/room?ticket=${ticket}&client=eve-tab`);
  t.after(() => source.close());
  await new Promise<void>((resolve) => (source.onopen = () => resolve()));
  await until(async () => (await kometa.presence('room')).count === 1, 3000, 'the member');
  const page = await kometa.presence('room', { limit: 10 });
  assert.equal(page.users, 1);
  assert.deepEqual(
    page.members.map(({ client, user, info, transport }) => ({ client, user, info, transport })),
    [{ client: 'eve-tab', user: 'u5', info: { name: 'Eve', avatar: 3 }, transport: 'sse' }],
  );
  // Info is signed: a ticket whose info is too large is refused when minted, not trimmed.
  await assert.rejects(kometa.mintTicket({ subscribe: ['room'], info: 'x'.repeat(2000) }));
});

test("the dashboard's channel detail shows the cluster's members and users beside the local subscribers", async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const sources = ['c1', 'c2'].map((client) => new EventSource(`${hub.url}/sub/shown?client=${client}`));
  t.after(() => sources.forEach((s) => s.close()));
  await Promise.all(sources.map((s) => new Promise<void>((resolve) => (s.onopen = () => resolve()))));
  const detail = await channelDetail(hub.hub, 'shown');
  assert.deepEqual(detail.presence, { count: 2, users: 0 });
  assert.equal(detail.subscribers, 2);
});
