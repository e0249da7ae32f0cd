import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import type { PresenceSnapshot } from '../../src/core/presence.js';
import { RedisBroker } from '../../src/brokers/redis.js';
import { httpRequest, startHub } from '../helpers/hub.js';
import { startKometa, startOwnRedis, uniquePrefix, type KometaProcess } from '../helpers/redis.js';
import { startOwnCluster } from '../helpers/redis-cluster.js';
import { until } from './helpers.js';

const WEBHOOK_SECRET = 'webhook-secret-for-tests';
const TTL_S = 2;
const GRACE_S = 0.5;

interface Received {
  readonly body: { id: string; time: string; event: string; channel: string; user?: string | null; client?: string };
  readonly valid: boolean;
}

/** A backend that takes webhooks and checks each signature against the raw body. */
async function webhookReceiver(): Promise<{ url: string; got: Received[]; close(): Promise<void> }> {
  const got: Received[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const expected = Buffer.from(`sha256=${createHmac('sha256', WEBHOOK_SECRET).update(raw).digest('hex')}`);
      const given = Buffer.from(String(req.headers['kometa-signature'] ?? ''));
      const valid = given.length === expected.length && timingSafeEqual(given, expected);
      got.push({ body: JSON.parse(raw.toString()) as Received['body'], valid });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    got,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

async function presenceOf(node: KometaProcess, channel: string): Promise<PresenceSnapshot> {
  const res = await httpRequest(`${node.url}/channels/${channel}/presence`);
  assert.equal(res.status, 200, res.body);
  return res.json<PresenceSnapshot>();
}

function subscribe(node: KometaProcess, channel: string, client: string): Promise<EventSource> {
  const source = new EventSource(`${node.url}/sub/${channel}?client=${client}`);
  return new Promise((resolve, reject) => {
    source.onopen = () => resolve(source);
    source.onerror = (error) => reject(new Error(`subscribe ${client}: ${String(error.message)}`));
  });
}

test('3 nodes on one Redis agree; SIGKILL one: its members leave in time, one vacated per empty channel', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const receiver = await webhookReceiver();
  t.after(() => receiver.close());
  const args = [
    '--redis', redis.url,
    '--redis-prefix', uniquePrefix('presence'),
    '--presence-ttl', String(TTL_S),
    '--presence-grace', String(GRACE_S),
    '--webhook-url', receiver.url,
    '--webhook-secret', WEBHOOK_SECRET,
  ];
  const nodes = await Promise.all([startKometa(args), startKometa(args), startKometa(args)]);
  t.after(() => Promise.all(nodes.map((n) => n.kill())));
  const [a, b, c] = nodes as [KometaProcess, KometaProcess, KometaProcess];
  const sources: EventSource[] = [];
  t.after(() => sources.forEach((s) => s.close()));
  sources.push(
    await subscribe(a, 'room1', 'a-1'),
    await subscribe(b, 'room1', 'b-1'),
    await subscribe(c, 'room2', 'c-2'),
    await subscribe(c, 'room3', 'c-3'),
    await subscribe(a, 'room3', 'a-3'),
  );
  const expected: Record<string, string[]> = { room1: ['a-1', 'b-1'], room2: ['c-2'], room3: ['a-3', 'c-3'] };
  await until(
    async () => (await presenceOf(a, 'room3')).count === 2 && (await presenceOf(a, 'room1')).count === 2,
    5000,
    'every member registered',
  );
  for (const node of nodes) {
    for (const [channel, clients] of Object.entries(expected)) {
      const seen = await presenceOf(node, channel);
      assert.deepEqual(seen.members.map((m) => m.client), clients, `${channel} seen from ${node.url}`);
      assert.equal(seen.count, clients.length);
      const info = await httpRequest(`${node.url}/channels/${channel}`);
      assert.equal(info.json<{ subscribers: number }>().subscribers, clients.length);
    }
  }
  // A publish through a node with no subscriber of the channel counts the members elsewhere.
  const published = await httpRequest(`${b.url}/pub/room2`, { method: 'POST', body: 'x' });
  assert.equal(published.json<{ subscribers: number }>().subscribers, 1);

  await c.kill('SIGKILL');
  const killedAt = performance.now();
  await until(
    async () => (await presenceOf(a, 'room2')).count === 0 && (await presenceOf(b, 'room3')).count === 1,
    15_000,
    "the dead node's members to leave",
  );
  const tookMs = performance.now() - killedAt;
  // Documented bound: the TTL plus one heartbeat (a third of it).
  assert.ok(tookMs <= TTL_S * 1000 * (4 / 3) + 1000, `took ${Math.round(tookMs)} ms`);
  // Another heartbeat round, so that a second reaper would have had its chance to report twice.
  await new Promise((resolve) => setTimeout(resolve, TTL_S * 1000));
  assert.deepEqual((await presenceOf(b, 'room3')).members.map((m) => m.client), ['a-3']);
  assert.deepEqual((await presenceOf(a, 'room1')).members.map((m) => m.client), ['a-1', 'b-1']);

  const events = receiver.got.map((r) => `${r.body.event} ${r.body.channel}`).sort();
  assert.deepEqual(events, [
    'channel.occupied room1',
    'channel.occupied room2',
    'channel.occupied room3',
    'channel.vacated room2',
  ]);
  assert.ok(receiver.got.every((r) => r.valid), 'every signature checks out');
  assert.equal(new Set(receiver.got.map((r) => r.body.id)).size, receiver.got.length);
});

test('--workers 3 on one Redis: whichever worker answers, the presence is the same', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const node = await startKometa(['--redis', redis.url, '--redis-prefix', uniquePrefix('workers'), '--workers', '3']);
  t.after(() => node.kill('SIGTERM'));
  const sources: EventSource[] = [];
  t.after(() => sources.forEach((s) => s.close()));
  // New connections are spread over the workers by node:cluster (round robin on Linux).
  for (let i = 0; i < 6; i++) sources.push(await subscribe(node, 'lobby', `w-${i}`));
  await until(async () => (await presenceOf(node, 'lobby')).count === 6, 5000, 'six members');
  const answers = new Set<string>();
  for (let i = 0; i < 9; i++) {
    const seen = await presenceOf(node, 'lobby');
    answers.add(JSON.stringify({ count: seen.count, clients: seen.members.map((m) => m.client) }));
  }
  assert.deepEqual([...answers], [JSON.stringify({ count: 6, clients: [0, 1, 2, 3, 4, 5].map((i) => `w-${i}`) })]);
});

test('Redis Cluster: two nodes agree on members of channels on every master; a dead one\'s leave', async (t) => {
  const cluster = await startOwnCluster({ masters: 3, replicas: 0 });
  t.after(() => cluster.stop());
  const prefix = uniquePrefix('cpres');
  const args = ['--redis-cluster', cluster.seeds, '--redis-prefix', prefix, '--presence-ttl', String(TTL_S)];
  const [a, b] = (await Promise.all([startKometa(args), startKometa(args)])) as [KometaProcess, KometaProcess];
  t.after(() => Promise.all([a.kill(), b.kill()]));
  const channels = ['alpha', 'beta', 'gamma', 'delta'];
  const sources: EventSource[] = [];
  t.after(() => sources.forEach((s) => s.close()));
  for (const channel of channels) {
    sources.push(await subscribe(a, channel, `a-${channel}`), await subscribe(b, channel, `b-${channel}`));
  }
  await until(
    async () => (await Promise.all(channels.map((c) => presenceOf(b, c)))).every((p) => p.count === 2),
    5000,
    'two members per channel',
  );
  for (const channel of channels) {
    assert.deepEqual((await presenceOf(a, channel)).members.map((m) => m.client), [`a-${channel}`, `b-${channel}`]);
  }
  await b.kill('SIGKILL');
  await until(
    async () => (await Promise.all(channels.map((c) => presenceOf(a, c)))).every((p) => p.count === 1),
    TTL_S * 1000 * (4 / 3) + 5000,
    "the dead node's members to leave",
  );
});

test('Redis restarted empty: a node writes its members again (they join again); leaves still reach it', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const broker = new RedisBroker({ url: redis.url, prefix: uniquePrefix('resync'), presenceTtlMs: 900 });
  await broker.ready();
  const hub = await startHub({ broker, presence: { graceMs: 200 } });
  t.after(() => hub.close());
  const events: string[] = [];
  for (const name of ['join', 'leave', 'occupied', 'vacated'] as const) hub.hub.on(name, (e) => events.push(e.event));
  const count = async () => (await hub.hub.presence!.store.count('survive').catch(() => -1));
  const source = new EventSource(`${hub.url}/sub/survive?client=r1`);
  t.after(() => source.close());
  await new Promise<void>((resolve) => (source.onopen = () => resolve()));
  await until(async () => (await count()) === 1, 3000, 'the member in Redis');
  await redis.kill();
  await redis.start();
  await until(async () => (await count()) === 1, 10_000, 'the member written again');
  assert.deepEqual(events, ['occupied', 'join', 'occupied', 'join']);
  source.close();
  await until(async () => (await count()) === 0, 5000, 'the leave');
  await until(async () => events.length === 6, 2000, 'leave and vacated');
  assert.deepEqual(events.slice(4), ['leave', 'vacated']);
});
