import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Comet } from '../../src/comet/comet.js';
import { createSeedHandler } from '../../src/comet/seed.js';
import type { CometHandler } from '../../src/comet/types.js';
import { type CometServers, frameworks, startCometServers } from '../helpers/comet-servers.js';
import { type TestHub, startHub, waitFor } from '../helpers/hub.js';
import { RawChunkedRequest } from '../helpers/raw-chunked.js';

const CLIENTS = 1000;
const LONG = 600_000;

const routes: Record<string, CometHandler> = {
  '/sleep': async (ctx) => {
    await ctx.write('sleeping\n');
    await ctx.sleep(LONG);
    ctx.end('woke\n');
  },
  '/wait': async (ctx) => {
    await ctx.write('waiting\n');
    // A timeout too, so that each wait also holds a timer that must go.
    await ctx.next(ctx.request.url.searchParams.get('channel') ?? 'abandoned', { timeout: LONG });
  },
  '/gen': async function* (ctx) {
    yield 'generating\n';
    await ctx.sleep(LONG);
    yield 'never\n';
  },
  '/quick': createSeedHandler(5),
};

/** Timers that keep the process alive (Node counts every ref'ed Timeout). */
function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
}

describe('clients that leave mid-deferral', () => {
  let hub: TestHub;
  let comet: Comet;
  let servers: CometServers;

  before(async () => {
    hub = await startHub();
    comet = new Comet({ hub: hub.hub });
    servers = await startCometServers(routes, comet);
  });
  after(async () => {
    await servers.close();
    await hub.close();
  });

  test(`${CLIENTS} clients that abort while their handlers sleep or wait leave no timer, waiter or subscription ` +
    `behind, and every framework keeps serving`, async () => {
    const timersBefore = activeTimers();
    const opened = hub.hub.counters.subscriptionsOpened;
    const kinds = ['/sleep', '/wait', '/gen'] as const;
    const clients: RawChunkedRequest[] = [];
    for (let batch = 0; batch < CLIENTS; batch += 100) {
      const wave: RawChunkedRequest[] = [];
      for (let i = batch; i < Math.min(CLIENTS, batch + 100); i++) {
        const framework = frameworks[i % frameworks.length]!;
        const kind = kinds[i % kinds.length]!;
        const path = kind === '/wait' ? `/wait?channel=abandoned-${i % 7}` : kind;
        wave.push(new RawChunkedRequest(servers.ports[framework], path));
      }
      await Promise.all(wave.map((client) => client.waitForChunks(1)));
      clients.push(...wave);
    }
    const waits = clients.filter((_, i) => kinds[i % kinds.length] === '/wait').length;
    await waitFor(
      () => comet.counters.sleeping === CLIENTS - waits && comet.counters.waiting === waits,
      10_000,
      'every handler to be deferred',
    );
    assert.equal(comet.counters.active, CLIENTS);
    assert.equal(hub.hub.channelCount, 7);
    assert.ok(activeTimers() >= timersBefore + CLIENTS, 'each deferral holds a timer while it is pending');

    for (const client of clients) client.abort();

    await waitFor(() => comet.counters.active === 0, 10_000, 'every handler to stop');
    assert.equal(comet.counters.sleeping, 0);
    assert.equal(comet.counters.waiting, 0);
    assert.equal(comet.counters.aborted, CLIENTS);
    assert.equal(comet.counters.failed, 0);
    assert.equal(hub.hub.channelCount, 0);
    for (let i = 0; i < 7; i++) assert.equal(hub.hub.subscriberCount(`abandoned-${i}`), 0);
    assert.equal(hub.hub.counters.subscriptionsOpened - opened, waits);
    assert.equal(hub.hub.counters.subscriptionsClosed, hub.hub.counters.subscriptionsOpened);
    await waitFor(() => activeTimers() <= timersBefore, 5000, 'the timers to be cleared');

    for (const framework of frameworks) {
      const response = await new RawChunkedRequest(servers.ports[framework], '/quick').response;
      assert.equal(response.chunks.length, 5, `${framework} still serves`);
      assert.ok(response.complete);
    }
  });

  test('a handler that stops waiting on its own (the loser of a race) leaves nothing pending either', async () => {
    const raced = new Comet({ hub: hub.hub });
    const racing = await startCometServers(
      {
        '/race': async (ctx) => {
          const winner = await Promise.race([
            ctx.sleep(20).then(() => 'sleep'),
            ctx.next('race-room').then(() => 'message'),
          ]);
          ctx.end(`${winner}\n`);
        },
      },
      raced,
    );
    try {
      for (const framework of frameworks) {
        const response = await new RawChunkedRequest(racing.ports[framework], '/race').response;
        assert.deepEqual(
          response.chunks.map((c) => c.data),
          ['sleep\n'],
        );
      }
      assert.equal(raced.counters.waiting, 0);
      assert.equal(raced.counters.sleeping, 0);
      await waitFor(() => hub.hub.subscriberCount('race-room') === 0, 2000, 'the losing wait to unsubscribe');
    } finally {
      await racing.close();
    }
  });
});
