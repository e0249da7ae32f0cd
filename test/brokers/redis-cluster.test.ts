import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { RedisClusterBroker, keySlot, parseSeed } from '../../src/brokers/redis-cluster.js';
import { uniquePrefix } from '../helpers/redis.js';
import { type OwnCluster, ask, startOwnCluster } from '../helpers/redis-cluster.js';
import { brokerConformance } from './conformance.js';

// A Redis Cluster of this file's own (3 masters, no replicas: the suite is about the
// Broker contract; failovers are tested in test/redis/cluster.test.ts).
let cluster: OwnCluster;
before(async () => {
  cluster = await startOwnCluster({ masters: 3, replicas: 0 });
});
after(() => cluster.stop());

brokerConformance({
  name: 'Redis Cluster',
  boundsTotal: false,
  async make(t, setup = {}) {
    const broker = new RedisClusterBroker({
      nodes: cluster.seeds.split(','),
      prefix: uniquePrefix('conformance'),
      history: setup.history,
      clock: setup.clock,
    });
    t.after(() => broker.close());
    await broker.ready();
    return broker;
  },
  async shared(t, count) {
    const prefix = uniquePrefix('conformance-shared');
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        // Each broker is given a different seed node: any node leads to the whole cluster.
        const broker = new RedisClusterBroker({ nodes: [cluster.seeds.split(',')[i % 3]!], prefix });
        t.after(() => broker.close());
        await broker.ready();
        return broker;
      }),
    );
  },
});

test('the broker works out the slot of a key exactly as Redis does, hash tags included', async () => {
  const keys = [
    'kometa:{room.42}.h',
    'kometa:{room.42}',
    'plain',
    'a{}b',
    '{}',
    'x{y',
    'x}y{z}',
    '{a}{b}',
    'p{user:7@eu}.s',
    'héllo{wörld}',
    '{}{x}',
    '',
  ];
  for (let i = 0; i < 50; i++) keys.push(`kometa:{c${i}}.s`);
  const port = Number(cluster.seeds.split(',')[0]!.split(':')[1]);
  const answers = await ask(port, (r) => Promise.all(keys.map((k) => r.cluster('KEYSLOT', k))));
  assert.deepEqual(keys.map(keySlot), answers);
});

test('seed nodes are host:port or redis:// URLs; credentials are taken, never shown', () => {
  assert.deepEqual(parseSeed('127.0.0.1:7000'), {
    host: '127.0.0.1',
    port: 7000,
    username: undefined,
    password: undefined,
    tls: false,
  });
  assert.deepEqual(parseSeed(' [::1]:7001 '), {
    host: '::1',
    port: 7001,
    username: undefined,
    password: undefined,
    tls: false,
  });
  assert.deepEqual(parseSeed('rediss://u:p%40ss@redis.example:7002'), {
    host: 'redis.example',
    port: 7002,
    username: 'u',
    password: 'p@ss',
    tls: true,
  });
  assert.equal(parseSeed('redis.example').port, 6379);
  assert.throws(() => parseSeed('http://x:1'));
  assert.throws(() => parseSeed(':7000'));
  const broker = new RedisClusterBroker({
    nodes: ['redis://u:secret@127.0.0.1:1'],
    reconnect: { minMs: 10_000, maxMs: 10_000 },
  });
  const health = broker.health();
  assert.equal(health.ok, false);
  assert.ok(
    !health.ok && !health.reason.includes('secret') && health.reason.includes('127.0.0.1:1'),
    !health.ok ? health.reason : '',
  );
  return broker.close();
});
