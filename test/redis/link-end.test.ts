import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RedisBroker } from '../../src/brokers/redis.js';
import type { Message } from '../../src/core/message.js';
import { waitFor } from '../helpers/hub.js';
import { startOwnRedis, uniquePrefix } from '../helpers/redis.js';

/*
 * ioredis gives up on a connection for good (status 'end', "Connection is
 * closed.") when it is told to disconnect while it is still connecting. In a
 * Sentinel failover the +switch-master watcher of an earlier connection does
 * exactly that, at a moment that depends on load; here it is done on purpose,
 * the same way, to each link in turn.
 */
for (const which of ['commands', 'subscriber'] as const) {
  const title = `a ${which} link that ioredis gave up on (ended while connecting) connects again; publishes resume`;
  test(title, async (t) => {
    const redis = await startOwnRedis({ persistent: false });
    t.after(() => redis.stop());
    const broker = new RedisBroker({
      url: redis.url,
      prefix: uniquePrefix('link-end'),
      reconnect: { minMs: 50, maxMs: 250 },
      commandTimeoutMs: 1000,
    });
    t.after(() => broker.close());
    await broker.ready();
    broker.watch('c');
    const first = await broker.publish('c', 'one');

    const link = broker.links[which];
    let ended = false;
    link.on('end', () => {
      ended = true;
    });
    (link as unknown as { once(event: 'connecting', listener: () => void): void }).once('connecting', () =>
      link.disconnect(true),
    );
    link.disconnect(true);
    await waitFor(() => ended, 10_000, `the ${which} link to end`);

    // Without a reconnect of the ended link, every publish answers "unavailable" from here on.
    const deadline = Date.now() + 30_000;
    let stored: Message | undefined;
    let lastError = '';
    while (stored === undefined) {
      if (Date.now() > deadline)
        assert.fail(`publishing kept failing (${lastError}); health: ${JSON.stringify(broker.health())}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
      stored = await broker.publish('c', 'two').catch((error: Error) => {
        lastError = error.message;
        return undefined;
      });
    }
    assert.equal(stored!.epoch, first.epoch);
    assert.ok(stored!.seq > first.seq);
    assert.deepEqual(broker.health(), { ok: true });
  });
}
