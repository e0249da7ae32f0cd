import assert from 'node:assert/strict';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { FileIdempotencyStore, IDEMPOTENCY_FILE } from '../../src/brokers/idempotency-file.js';
import { Hub } from '../../src/core/hub.js';
import { Idempotency, MemoryIdempotencyStore } from '../../src/core/idempotency.js';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { createHubServer } from '../../src/http/hub-server.js';
import { httpRequest, waitFor } from '../helpers/hub.js';
import { tempDataDir } from '../helpers/data-dir.js';

test('idempotency.log: read back at open, expired entries and a torn last line dropped, compacted when mostly ' +
  'dead', async () => {
  const dir = tempDataDir('idem-store');
  let now = 1_000_000;
  const clock = () => now;
  const store = await FileIdempotencyStore.open(dir, { now: clock });
  await store.complete('a', 'fa', '{"id":"x~e~1"}', 1000);
  await store.complete('b', 'fb', '{"id":"x~e~2"}', 5000);
  await store.close();
  appendFileSync(join(dir, IDEMPOTENCY_FILE), '{"k":"c","f":"fc","r":"{}","e":9'); // torn: the process died mid-write
  now += 2000;
  const reopened = await FileIdempotencyStore.open(dir, { now: clock });
  assert.equal(await reopened.lookup('a'), undefined, 'past its window');
  assert.deepEqual(await reopened.lookup('b'), { state: 'done', fingerprint: 'fb', result: '{"id":"x~e~2"}' });
  assert.equal(await reopened.lookup('c'), undefined, 'the torn line is gone');
  assert.equal(
    readFileSync(join(dir, IDEMPOTENCY_FILE), 'utf8').trim().split('\n').length,
    1,
    'rewritten with the live key only',
  );
  // Many keys that expire: the file is rewritten instead of growing without bound.
  for (let i = 0; i < 3000; i++) await reopened.complete(`k${i}`, 'f', '{}', 10);
  now += 2000;
  await reopened.complete('last', 'f', '{}', 10_000);
  await reopened.close();
  const lines = readFileSync(join(dir, IDEMPOTENCY_FILE), 'utf8').trim().split('\n').length;
  assert.ok(lines <= 3, `compacted to ${lines} lines`);
  const again = await FileIdempotencyStore.open(dir, { now: clock });
  assert.equal((await again.lookup('last'))?.state, 'done');
  assert.equal((await again.lookup('b'))?.state, 'done');
  await again.close();
});

test('a failed publish releases its key, so the retry publishes', async () => {
  const idempotency = new Idempotency(new MemoryIdempotencyStore());
  await assert.rejects(idempotency.run('k', 'f', async () => Promise.reject(new Error('store down'))));
  const outcome = await idempotency.run('k', 'f', async () => ({ id: 'a~e~1' }));
  assert.deepEqual(outcome, { value: { id: 'a~e~1' }, replayed: false });
});

test("two servers on one hub (a proxy's public and control ports) share keys and disconnect orders", async (t) => {
  const hub = new Hub(new MemoryBroker());
  const one = createHubServer(hub, { shutdownGraceMs: 100 });
  const two = createHubServer(hub, { shutdownGraceMs: 100 });
  const [a, b] = await Promise.all([one.listen(0, '127.0.0.1'), two.listen(0, '127.0.0.1')]);
  t.after(() => Promise.all([one.close(), two.close()]));
  const post = (port: number) =>
    httpRequest(`http://127.0.0.1:${port}/pub/shared`, {
      method: 'POST',
      headers: { 'Idempotency-Key': 'both' },
      body: 'x',
    });
  const first = await post(a.port);
  const second = await post(b.port);
  assert.equal(second.headers['idempotent-replayed'], 'true');
  assert.equal(second.json<{ id: string }>().id, first.json<{ id: string }>().id);
  const poll = httpRequest(`http://127.0.0.1:${b.port}/sub/shared?transport=poll&timeout=10&client=tab-1`);
  await waitFor(() => hub.subscriberCount('shared') === 1);
  await httpRequest(`http://127.0.0.1:${a.port}/disconnect`, { method: 'POST', body: '{"client":"tab-1"}' });
  assert.equal((await poll).status, 410);
});
