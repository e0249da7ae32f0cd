import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { Comet } from '../../src/comet/comet.js';
import { createSeedHandler } from '../../src/comet/seed.js';
import type { CometHandler } from '../../src/comet/types.js';
import { type CometServers, frameworks, startCometServers } from '../helpers/comet-servers.js';
import { type TestHub, publish, startHub, waitFor } from '../helpers/hub.js';
import { RawChunkedRequest } from '../helpers/raw-chunked.js';

/** The deferral used in place of the seed's one second, to keep the suite short. */
const D = 150;
/** Node's timers count from a cached loop time, so a timer may fire a hair before its full delay by another clock. */
const SLACK = 3;

const waitHandler: CometHandler = async (ctx) => {
  ctx.setHeader('Content-Type', 'text/plain; charset=utf-8');
  const params = ctx.request.url.searchParams;
  await ctx.write('waiting\n');
  const timeout = params.get('timeout');
  const result = await ctx.next(params.get('channel') ?? 'room', {
    since: params.get('since') ?? undefined,
    timeout: timeout === null ? undefined : Number(timeout),
  });
  if (result.timedOut) {
    ctx.end('timeout\n');
    return;
  }
  for (const message of result.messages) await ctx.write(`${message.channel}:${message.data}\n`);
};

async function* generatorHandler(ctx: Parameters<CometHandler>[0]): AsyncGenerator<string> {
  yield 'gen0\n';
  await ctx.sleep(D);
  yield 'gen1\n';
  const result = await ctx.next(ctx.request.url.searchParams.get('channel') ?? 'gen-room', { timeout: 10_000 });
  yield result.timedOut ? 'timeout\n' : `got:${result.messages.map((m) => m.data).join(',')}\n`;
}

describe('the same comet handlers in node:http, Express, Fastify and Hono', () => {
  let hub: TestHub;
  let comet: Comet;
  let servers: CometServers;

  before(async () => {
    hub = await startHub();
    comet = new Comet({ hub: hub.hub });
    servers = await startCometServers(
      { '/seed': createSeedHandler(D), '/wait': waitHandler, '/gen': generatorHandler },
      comet,
    );
  });
  after(async () => {
    await servers.close();
    await hub.close();
  });

  for (const framework of frameworks) {
    test(`${framework}: the seed example arrives as five chunks on one chunked response, each no earlier than its ` +
      `deferral`, async () => {
      const request = new RawChunkedRequest(servers.ports[framework], '/seed');
      const response = await request.response;
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('transfer-encoding'), 'chunked');
      assert.equal(response.headers.get('x-accel-buffering'), 'no');
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        ['First content<br />', 'stage1<br />', 'stage2<br />', 'stage3<br />', 'last_stage4<br />'],
      );
      assert.ok(response.complete, 'the response ends with the terminating chunk');
      response.chunks.forEach((chunk, stage) => {
        assert.ok(
          chunk.at - response.sentAt >= stage * D - SLACK,
          `stage ${stage} came ${(chunk.at - response.sentAt).toFixed(1)} ms after the request`,
        );
      });
    });

    test(`${framework}: a handler waiting on next('room') answers when POST /pub/room happens`, async () => {
      const request = new RawChunkedRequest(servers.ports[framework], '/wait?channel=room');
      await request.waitForChunks(1);
      await waitFor(() => hub.hub.subscriberCount('room') === 1, 5000, 'the handler to wait on room');
      await new Promise((resolve) => setTimeout(resolve, D));
      const publishedAt = performance.now();
      await publish(hub.url, 'room', `hello from ${framework}`);
      const response = await request.response;
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        ['waiting\n', `room:hello from ${framework}\n`],
      );
      assert.ok(response.chunks[1]!.at >= publishedAt, 'the answer comes after the publish, not before');
      assert.ok(response.complete);
      await waitFor(() => hub.hub.subscriberCount('room') === 0, 5000, 'the wait to unsubscribe');
    });

    test(`${framework}: a wait with a timeout ends cleanly when nothing is published`, async () => {
      const channel = `quiet-${framework}`;
      const request = new RawChunkedRequest(servers.ports[framework], `/wait?channel=${channel}&timeout=${D}`);
      const response = await request.response;
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        ['waiting\n', 'timeout\n'],
      );
      assert.ok(response.complete);
      assert.ok(response.chunks[1]!.at - response.sentAt >= D - SLACK);
      await waitFor(() => hub.hub.subscriberCount(channel) === 0, 5000, 'the wait to unsubscribe');
    });

    test(`${framework}: a generator handler sends each yield as its own chunk, sleeps and waits between ` +
      `them`, async () => {
      const channel = `gen-${framework}`;
      const request = new RawChunkedRequest(servers.ports[framework], `/gen?channel=${channel}`);
      await request.waitForChunks(2);
      await waitFor(() => hub.hub.subscriberCount(channel) === 1, 5000, 'the generator to wait');
      const publishedAt = performance.now();
      await publish(hub.url, channel, 'event');
      const response = await request.response;
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        ['gen0\n', 'gen1\n', 'got:event\n'],
      );
      assert.ok(response.complete);
      assert.ok(response.chunks[1]!.at - response.sentAt >= D - SLACK, 'gen1 waits for the sleep');
      assert.ok(response.chunks[2]!.at >= publishedAt, 'the last chunk waits for the publish');
    });
  }

  test('one POST /pub/room wakes the handlers waiting in all four frameworks at once', async () => {
    const requests = frameworks.map(
      (framework) => new RawChunkedRequest(servers.ports[framework], '/wait?channel=room'),
    );
    await waitFor(() => hub.hub.subscriberCount('room') === frameworks.length, 5000, 'every handler to wait');
    const result = await publish(hub.url, 'room', 'everyone');
    assert.equal(result.subscribers, frameworks.length);
    for (const request of requests) {
      const response = await request.response;
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        ['waiting\n', 'room:everyone\n'],
      );
    }
  });

  test('a wait with since answers at once from what history holds after that cursor', async () => {
    const first = await publish(hub.url, 'resume', 'a');
    await publish(hub.url, 'resume', 'b');
    const resumed = await new RawChunkedRequest(
      servers.ports.node,
      `/wait?channel=resume&since=${encodeURIComponent(first.id)}`,
    ).response;
    assert.deepEqual(
      resumed.chunks.map((c) => c.data),
      ['waiting\n', 'resume:b\n'],
    );
    assert.equal(hub.hub.subscriberCount('resume'), 0);
  });

  test('nothing is left pending once every response is over', async () => {
    await waitFor(() => comet.counters.active === 0, 5000, 'handlers to finish');
    assert.equal(comet.counters.sleeping, 0);
    assert.equal(comet.counters.waiting, 0);
    assert.equal(comet.counters.failed, 0);
    assert.equal(hub.hub.counters.subscriptionsOpened, hub.hub.counters.subscriptionsClosed);
  });
});
