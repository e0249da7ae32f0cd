import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisBroker } from '../../src/brokers/redis.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { startOwnRedis } from '../helpers/redis.js';
import { StreamReader } from '../helpers/streams.js';

test('a Redis that stops answering without closing its sockets is noticed, and delivery resumes when it answers ' +
  'again', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => {
    if (redis.pid !== undefined) process.kill(redis.pid, 'SIGCONT');
    return redis.stop();
  });
  const broker = new RedisBroker({ url: redis.url, prefix: 'liveness:', pingIntervalMs: 200, commandTimeoutMs: 300 });
  await broker.ready();
  const hub = await startHub({ broker });
  t.after(() => hub.close());
  const reader = await StreamReader.open(`${hub.url}/sub/frozen?transport=stream`);
  t.after(() => reader.close());
  await reader.waitFor((r) => r.text.includes('"type":"live"'));

  // SIGSTOP: the server freezes with every TCP connection still open, as behind a network black hole.
  process.kill(redis.pid!, 'SIGSTOP');
  await waitFor(() => !broker.health().ok, 10_000, 'the frozen Redis to be noticed');
  assert.equal((await httpRequest(`${hub.url}/healthz`)).status, 503);
  assert.match(JSON.stringify(broker.health()), /unreachable/);

  process.kill(redis.pid!, 'SIGCONT');
  await waitFor(() => broker.health().ok, 15_000, 'Redis to be back');
  await waitFor(() => hub.hub.subscriberCount('frozen') === 1, 5000);
  await hub.hub.publish('frozen', 'after the thaw');
  await reader.waitFor((r) => r.text.includes('"data":"after the thaw"'), 10_000, 'delivery after the thaw');
});
