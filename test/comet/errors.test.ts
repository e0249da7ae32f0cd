import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { after, before, describe, test } from 'node:test';
import { Comet } from '../../src/comet/comet.js';
import { createSeedHandler } from '../../src/comet/seed.js';
import type { CometErrorReport, CometHandler } from '../../src/comet/types.js';
import { type CometServers, frameworks, startCometServers } from '../helpers/comet-servers.js';
import { type TestHub, startHub, waitFor } from '../helpers/hub.js';
import { RawChunkedRequest } from '../helpers/raw-chunked.js';

const routes: Record<string, CometHandler> = {
  '/boom-before': async (ctx) => {
    ctx.status = 201;
    ctx.setHeader('X-Stage', 'first');
    await ctx.sleep(5);
    throw new Error('secret detail that must not reach the client');
  },
  '/boom-after': async (ctx) => {
    await ctx.write('one\n');
    await ctx.sleep(20);
    throw new Error('failed after the first chunk');
  },
  '/generator-boom-after': async function* () {
    yield 'one\n';
    throw new Error('a generator failed after the first chunk');
  },
  '/bad-channel': async (ctx) => {
    await ctx.next('no spaces allowed here');
  },
  '/ok': createSeedHandler(10),
};

describe('a handler that throws', () => {
  let hub: TestHub;
  let servers: CometServers;
  const reports: CometErrorReport[] = [];
  const published: unknown[] = [];
  const onPublish = (message: unknown): void => {
    published.push(message);
  };
  let comet: Comet;

  before(async () => {
    hub = await startHub();
    comet = new Comet({ hub: hub.hub, onError: (report) => reports.push(report) });
    subscribe('kometa:comet:error', onPublish);
    servers = await startCometServers(routes, comet);
  });
  after(async () => {
    unsubscribe('kometa:comet:error', onPublish);
    await servers.close();
    await hub.close();
  });

  for (const framework of frameworks) {
    test(`${framework}: before the first chunk, is answered with a 500 problem-details body that tells nothing of ` +
      `the error`, async () => {
      const before = reports.length;
      const response = await new RawChunkedRequest(servers.ports[framework], '/boom-before').response;
      assert.equal(response.status, 500);
      assert.match(response.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal(response.headers.get('x-stage'), undefined, 'headers set by the failed stage are not sent');
      const body = response.chunks.length > 0 ? response.chunks.map((c) => c.data).join('') : response.body;
      const problem = JSON.parse(body) as { status: number; code: string; detail: string };
      assert.equal(problem.status, 500);
      assert.equal(problem.code, 'KOMETA_ERR_INTERNAL');
      assert.doesNotMatch(body, /secret/);
      await waitFor(() => reports.length === before + 1, 2000, 'the failure to be reported');
      assert.equal(reports.at(-1)!.phase, 'before-first-chunk');
      assert.equal(reports.at(-1)!.path, '/boom-before');
    });

    test(`${framework}: after the first chunk, cuts the response (no terminating chunk) and is reported ` +
      `once`, async () => {
      const before = reports.length;
      const response = await new RawChunkedRequest(servers.ports[framework], '/boom-after').response;
      assert.equal(response.status, 200);
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        ['one\n'],
      );
      assert.equal(response.complete, false, 'the client can tell the response is truncated');
      await waitFor(() => reports.length === before + 1, 2000, 'the failure to be reported');
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(reports.length, before + 1, 'reported exactly once');
      assert.equal(reports.at(-1)!.phase, 'after-first-chunk');
      assert.match(String(reports.at(-1)!.error), /failed after the first chunk/);
    });

    test(`${framework}: a generator that throws after its first yield is cut the same way`, async () => {
      const response = await new RawChunkedRequest(servers.ports[framework], '/generator-boom-after').response;
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        ['one\n'],
      );
      assert.equal(response.complete, false);
    });

    test(`${framework}: a KometaError before the first chunk keeps its status (a bad channel name is a ` +
      `400)`, async () => {
      const response = await new RawChunkedRequest(servers.ports[framework], '/bad-channel').response;
      assert.equal(response.status, 400);
      const body = response.chunks.length > 0 ? response.chunks.map((c) => c.data).join('') : response.body;
      assert.equal((JSON.parse(body) as { code: string }).code, 'KOMETA_ERR_CHANNEL_NAME');
    });

    test(`${framework}: keeps serving after all of that`, async () => {
      const response = await new RawChunkedRequest(servers.ports[framework], '/ok').response;
      assert.equal(response.chunks.length, 5);
      assert.ok(response.complete);
    });
  }

  test('every failure is published once on the kometa:comet:error diagnostics channel', () => {
    assert.equal(published.length, reports.length);
    assert.equal(comet.counters.failed, reports.length);
    assert.equal(comet.counters.active, 0);
    assert.equal(comet.counters.sleeping, 0);
    assert.equal(comet.counters.waiting, 0);
  });
});
