import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccessPolicy } from '../../src/auth/access.js';
import { RedisBroker } from '../../src/brokers/redis.js';
import { type TestHub, httpRequest, startHub } from '../helpers/hub.js';
import { deletePrefix, uniquePrefix } from '../helpers/redis.js';
import { SHARED_REDIS_URL } from '../helpers/shared-redis.js';

/** A hub process stand-in: its own hub, broker connection and access policy, on the shared Redis. */
async function node(t: { after(fn: () => Promise<void>): void }, prefix: string): Promise<TestHub> {
  const broker = new RedisBroker({ url: SHARED_REDIS_URL, prefix });
  await broker.ready();
  const hub = await startHub({
    broker,
    http: { access: await AccessPolicy.create({ publisherKey: 'same-key-on-every-node' }) },
  });
  t.after(() => hub.close());
  return hub;
}

const poll = (hub: TestHub, path: string, headers: Record<string, string> = {}) =>
  httpRequest(`${hub.url}${path}&transport=poll&timeout=0`, { headers });

test('a ticket minted on one node is accepted on another, once across all of them, and its cookie works ' +
  'everywhere', async (t) => {
  const prefix = uniquePrefix('tickets');
  t.after(() => deletePrefix(SHARED_REDIS_URL, prefix));
  const a = await node(t, prefix);
  const b = await node(t, prefix);
  const minted = await httpRequest(`${a.url}/tickets`, {
    method: 'POST',
    headers: { Authorization: 'Bearer same-key-on-every-node', 'Content-Type': 'application/json' },
    body: '{"subscribe":["room.1"]}',
  });
  assert.equal(minted.status, 201);
  const { ticket } = minted.json<{ ticket: string }>();

  const onB = await poll(b, `/sub/room.1?ticket=${ticket}`);
  assert.equal(onB.status, 200, 'redeemed on another node');
  const cookie = String(onB.headers['set-cookie']).split(';')[0]!;
  const againOnA = await poll(a, `/sub/room.1?ticket=${ticket}`);
  assert.equal(againOnA.status, 401, 'spent everywhere, not just where it was used');
  assert.equal(againOnA.json<{ code: string }>().code, 'KOMETA_ERR_TICKET');
  assert.equal(
    (await poll(a, `/sub/room.1?ticket=${ticket}`, { Cookie: cookie })).status,
    200,
    'the session cookie works on every node',
  );
});
