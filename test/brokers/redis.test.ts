import { after, before } from 'node:test';
import { RedisBroker } from '../../src/brokers/redis.js';
import { type OwnRedis, startOwnRedis, uniquePrefix } from '../helpers/redis.js';
import { brokerConformance } from './conformance.js';

// A redis-server of this file's own on a spare port: no test depends on :6379.
let redis: OwnRedis;
before(async () => {
  redis = await startOwnRedis({ persistent: false });
});
after(() => redis.stop());

brokerConformance({
  name: 'Redis',
  boundsTotal: false,
  async make(t, setup = {}) {
    const broker = new RedisBroker({
      url: redis.url,
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
      Array.from({ length: count }, async () => {
        const broker = new RedisBroker({ url: redis.url, prefix });
        t.after(() => broker.close());
        await broker.ready();
        return broker;
      }),
    );
  },
});
