import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisBroker } from '../../src/brokers/redis.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { startOwnRedis } from '../helpers/redis.js';

test('a 503 BROKER_UNAVAILABLE means "may or may not have been stored": both happen, and the detail says which ' +
  'advice applies', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => {
    if (redis.pid !== undefined) process.kill(redis.pid, 'SIGCONT');
    return redis.stop();
  });
  const broker = new RedisBroker({ url: redis.url, prefix: 'p503:', commandTimeoutMs: 500, pingIntervalMs: 60_000 });
  await broker.ready();
  const hub = await startHub({ broker, http: { publishRate: 0 } });
  t.after(() => hub.close());
  const publish = (data: string) => httpRequest(`${hub.url}/pub/c`, { method: 'POST', body: data });

  assert.equal((await publish('one')).status, 201);
  // Redis freezes after the script is sent: no answer within the command timeout.
  process.kill(redis.pid!, 'SIGSTOP');
  const unanswered = await publish('two');
  assert.equal(unanswered.status, 503);
  const problem = unanswered.json<{ code: string; detail: string }>();
  assert.equal(problem.code, 'KOMETA_ERR_BROKER_UNAVAILABLE');
  assert.match(problem.detail, /may or may not have been stored; retry/);
  process.kill(redis.pid!, 'SIGCONT');
  await waitFor(() => broker.health().ok, 15_000, 'Redis to answer again');

  // The message answered with 503 was stored after all: the next one is number 3.
  const three = await publish('three');
  assert.equal(three.status, 201);
  assert.match(three.json<{ id: string }>().id, /^c~[^~]+~3$/);
  const history = await httpRequest(
    `${hub.url}/sub/c?transport=poll&timeout=0&since=${encodeURIComponent(three.json<{ id: string }>().id.replace(/~3$/, '~0'))}`,
  );
  assert.match(history.body, /"data":"two"/, 'the 503 message is in history');

  // When Redis is already known to be down, nothing is sent: "not stored".
  await redis.kill();
  await waitFor(() => !broker.health().ok, 10_000, 'the outage to be noticed');
  const refused = await publish('four');
  assert.equal(refused.status, 503);
  assert.match(refused.json<{ detail: string }>().detail, /the message was not stored; retry shortly/);
});
