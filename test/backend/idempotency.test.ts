import assert from 'node:assert/strict';
import { test } from 'node:test';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { dataDirArgs } from '../helpers/data-dir.js';
import { startKometa, startOwnRedis, uniquePrefix } from '../helpers/redis.js';
import { postJson, wsFollower } from './helpers.js';

function pubWithKey(base: string, channel: string, data: string, key: string) {
  return httpRequest(`${base}/pub/${channel}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain', 'Idempotency-Key': key },
    body: data,
  });
}

async function headSeq(base: string, channel: string): Promise<number> {
  const res = await httpRequest(`${base}/channels/${channel}`);
  const last = res.json<{ last: string | null }>().last;
  return last === null ? 0 : Number(last.split('~')[2]);
}

test('the same Idempotency-Key three times publishes once and answers the same id, the repeats marked as ' +
  'replays', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const follower = await wsFollower(hub.url, ['orders']);
  t.after(() => follower.close());
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(await pubWithKey(hub.url, 'orders', 'order 1 paid', 'job-1'));
  assert.deepEqual(
    answers.map((a) => a.status),
    [201, 201, 201],
  );
  const ids = answers.map((a) => a.json<{ id: string }>().id);
  assert.equal(new Set(ids).size, 1);
  assert.deepEqual(
    answers.map((a) => a.headers['idempotent-replayed']),
    [undefined, 'true', 'true'],
  );
  assert.deepEqual(
    answers.map((a) => a.json<{ replayed?: boolean }>().replayed),
    [undefined, true, true],
  );
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(
    follower.got.map((d) => d.id),
    [ids[0]],
  );
  assert.equal(await headSeq(hub.url, 'orders'), 1);
});

test('concurrent duplicates (three in flight at once) still publish one message', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const answers = await Promise.all([1, 2, 3].map(() => pubWithKey(hub.url, 'c', 'same', 'k-concurrent')));
  assert.equal(new Set(answers.map((a) => a.json<{ id: string }>().id)).size, 1);
  assert.equal(answers.filter((a) => a.headers['idempotent-replayed'] === 'true').length, 2);
  assert.equal(await headSeq(hub.url, 'c'), 1);
});

test('a key reused with another body, event or channel is refused with 422, and a malformed key with ' +
  '400', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  assert.equal((await pubWithKey(hub.url, 'a', 'one', 'k1')).status, 201);
  for (const res of [await pubWithKey(hub.url, 'a', 'two', 'k1'), await pubWithKey(hub.url, 'b', 'one', 'k1')]) {
    assert.equal(res.status, 422);
    assert.equal(res.json<{ code: string }>().code, 'KOMETA_ERR_IDEMPOTENCY_CONFLICT');
  }
  const bad = await pubWithKey(hub.url, 'a', 'one', 'k'.repeat(256));
  assert.equal(bad.status, 400);
  assert.equal(bad.json<{ code: string }>().code, 'KOMETA_ERR_IDEMPOTENCY_KEY');
  assert.equal(await headSeq(hub.url, 'a'), 1);
  assert.equal(await headSeq(hub.url, 'b'), 0);
});

test('batch items with idempotencyKey replay per item, and share keys with POST /pub/<channel>', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const first = await pubWithKey(hub.url, 'x', 'hello', 'shared-key');
  const batch = [
    { channel: 'x', data: 'hello', idempotencyKey: 'shared-key' },
    { channel: 'y', data: 'new', idempotencyKey: 'fresh' },
    { channels: ['p', 'q'], data: 'both', idempotencyKey: 'bcast' },
    { channel: 'x', data: 'changed', idempotencyKey: 'shared-key' },
  ];
  const one = (await postJson(`${hub.url}/pub`, batch)).json<{
    results: Record<string, unknown>[];
    published: number;
  }>();
  assert.equal(one.results[0]!.id, first.json<{ id: string }>().id);
  assert.equal(one.results[0]!.replayed, true);
  assert.equal(one.results[1]!.replayed, undefined);
  assert.equal((one.results[3]!.error as { code: string }).code, 'KOMETA_ERR_IDEMPOTENCY_CONFLICT');
  assert.equal(one.published, 3);
  const two = (await postJson(`${hub.url}/pub`, batch.slice(0, 3))).json<{
    results: Record<string, unknown>[];
    published: number;
  }>();
  assert.equal(two.published, 0);
  assert.deepEqual(
    two.results.map((r) => r.replayed),
    [true, true, true],
  );
  assert.deepEqual(two.results[2], { ...one.results[2], replayed: true });
  for (const [channel, seq] of [
    ['x', 1],
    ['y', 1],
    ['p', 1],
    ['q', 1],
  ] as const)
    assert.equal(await headSeq(hub.url, channel), seq);
});

test('after a restart on the same data directory, a key is still remembered within the window, and forgotten after ' +
  'it', async (t) => {
  const args = [...dataDirArgs('idem'), '--idempotency-window', '3'];
  let node = await startKometa(args);
  t.after(() => node.kill());
  const first = await pubWithKey(node.url, 'jobs', 'run 1', 'restart-key');
  assert.equal(first.status, 201);
  await node.kill('SIGKILL');
  node = await startKometa(args);
  const again = await pubWithKey(node.url, 'jobs', 'run 1', 'restart-key');
  assert.equal(again.status, 201);
  assert.equal(again.headers['idempotent-replayed'], 'true');
  assert.equal(again.json<{ id: string }>().id, first.json<{ id: string }>().id);
  assert.equal(await headSeq(node.url, 'jobs'), 1);
  await node.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 3200));
  node = await startKometa(args);
  const later = await pubWithKey(node.url, 'jobs', 'run 1', 'restart-key');
  assert.equal(later.headers['idempotent-replayed'], undefined, 'the window is over: published anew');
  assert.equal(await headSeq(node.url, 'jobs'), 2);
});

test('two kometa nodes on one Redis: the same key sent to both, also at once, publishes one message with one ' +
  'id', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const args = ['--redis', redis.url, '--redis-prefix', uniquePrefix('idem')];
  const [a, b] = await Promise.all([startKometa(args), startKometa(args)]);
  t.after(() => Promise.all([a.kill(), b.kill()]));
  const followers = await Promise.all([wsFollower(a.url, ['pay']), wsFollower(b.url, ['pay'])]);
  t.after(() => followers.forEach((f) => f.close()));
  const answers = [
    await pubWithKey(a.url, 'pay', 'invoice 7', 'redis-key'),
    await pubWithKey(b.url, 'pay', 'invoice 7', 'redis-key'),
    await pubWithKey(a.url, 'pay', 'invoice 7', 'redis-key'),
  ];
  const concurrent = await Promise.all(
    [a, b, a, b].map((node) => pubWithKey(node.url, 'pay', 'invoice 8', 'redis-key-2')),
  );
  const ids = answers.map((r) => r.json<{ id: string }>().id);
  assert.equal(new Set(ids).size, 1);
  assert.deepEqual(
    answers.map((r) => r.headers['idempotent-replayed']),
    [undefined, 'true', 'true'],
  );
  assert.equal(new Set(concurrent.map((r) => r.json<{ id: string }>().id)).size, 1);
  assert.equal(concurrent.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 3);
  const conflict = await pubWithKey(b.url, 'pay', 'invoice 9', 'redis-key');
  assert.equal(conflict.status, 422);
  await waitFor(() => followers.every((f) => f.got.length >= 2));
  await new Promise((r) => setTimeout(r, 200));
  for (const follower of followers)
    assert.deepEqual(
      follower.got.map((d) => d.data),
      ['invoice 7', 'invoice 8'],
    );
  assert.equal(await headSeq(a.url, 'pay'), 2);
});

test('a WebSocket publish frame with idempotencyKey shares the HTTP keys: one message, the repeat answered ' +
  '"replayed"', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const { openSocket } = await import('../ws/helpers.js');
  const socket = await openSocket(hub.url);
  t.after(() => socket.close());
  const http = await pubWithKey(hub.url, 'ws.k', 'same', 'ws-key');
  socket.send({ type: 'publish', channel: 'ws.k', data: 'same', idempotencyKey: 'ws-key', ref: 1 });
  const replay = await socket.next('published');
  assert.deepEqual(replay, {
    type: 'published',
    channel: 'ws.k',
    id: http.json<{ id: string }>().id,
    subscribers: 0,
    replayed: true,
    ref: 1,
  });
  socket.send({ type: 'publish', channel: 'ws.k', data: 'other', idempotencyKey: 'ws-key', ref: 2 });
  const refused = await socket.next('error');
  assert.equal(refused.code, 'KOMETA_ERR_IDEMPOTENCY_CONFLICT');
  assert.equal(await headSeq(hub.url, 'ws.k'), 1);
});
