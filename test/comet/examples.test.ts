import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { serve } from '@hono/node-server';
import { describe, test } from 'node:test';
import { app as expressApp } from '../../examples/comet/express.js';
import { app as fastifyApp } from '../../examples/comet/fastify.js';
import { app as honoApp } from '../../examples/comet/hono.js';
import { server as nodeServer } from '../../examples/comet/node-http.js';
import { app as waitApp, hub as waitHub } from '../../examples/comet/wait.js';
import { waitFor } from '../helpers/hub.js';
import { RawChunkedRequest } from '../helpers/raw-chunked.js';
import { dataDirArgs } from '../helpers/data-dir.js';

const STAGES = ['First content<br />', 'stage1<br />', 'stage2<br />', 'stage3<br />', 'last_stage4<br />'];
const SLACK = 3;

function listen(server: Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

describe('the examples', () => {
  test('the seed example in each of the four frameworks: five chunks, one second apart, on one chunked ' +
    'response', async (t) => {
    const express = expressApp.listen(0, '127.0.0.1');
    await new Promise((resolve) => express.once('listening', resolve));
    await fastifyApp.listen({ port: 0, host: '127.0.0.1' });
    const hono = serve({ fetch: honoApp.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
    await new Promise((resolve) => (hono.listening ? resolve(undefined) : hono.once('listening', resolve)));
    t.after(async () => {
      fastifyApp.server.closeAllConnections();
      await Promise.all([close(nodeServer), close(express), fastifyApp.close(), close(hono)]);
    });
    const ports = {
      node: await listen(nodeServer),
      express: (express.address() as AddressInfo).port,
      fastify: (fastifyApp.server.address() as AddressInfo).port,
      hono: (hono.address() as AddressInfo).port,
    };
    // All four at once: four seconds in all, and each shows the others were not held up.
    const responses = await Promise.all(
      Object.values(ports).map((port) => new RawChunkedRequest(port, '/seed').response),
    );
    for (const [i, response] of responses.entries()) {
      const framework = Object.keys(ports)[i];
      assert.equal(response.headers.get('transfer-encoding'), 'chunked', framework);
      assert.deepEqual(
        response.chunks.map((c) => c.data),
        STAGES,
        framework,
      );
      assert.ok(response.complete, framework);
      response.chunks.forEach((chunk, stage) => {
        assert.ok(
          chunk.at - response.sentAt >= stage * 1000 - SLACK,
          `${framework} stage ${stage} came ${(chunk.at - response.sentAt).toFixed(0)} ms in`,
        );
      });
    }
  });

  test('the wait example answers a publish on its room, and the cursor carries over between waits', async (t) => {
    const server = waitApp.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    t.after(() => close(server));
    const client = new RawChunkedRequest((server.address() as AddressInfo).port, '/room');
    await client.waitForChunks(1);
    await waitFor(() => waitHub.subscriberCount('room') === 1, 5000, 'the handler to wait');
    await waitHub.publish('room', 'one');
    await waitHub.publish('room', 'two');
    const chunks = await client.waitForChunks(3);
    assert.deepEqual(chunks.map((c) => c.data).join(''), 'waiting for the room\none\ntwo\n');
    client.abort();
    await waitFor(() => waitHub.subscriberCount('room') === 0, 5000, 'the wait to end with the client');
  });

  test('kometa serve answers /seed, as curl -N --raw shows', async (t) => {
    const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
    const child = spawn(process.execPath, [cli, 'serve', '--port', '0', '--host', '127.0.0.1', ...dataDirArgs()], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => {
      child.kill('SIGKILL');
    });
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (text: string) => (out += text));
    await waitFor(() => /listening on http:\/\/127\.0\.0\.1:\d+/.test(out), 10_000, 'kometa serve to listen');
    const base = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)![1]!;
    assert.match(out, /curl -N --raw .*\/seed/);
    const raw = await new Promise<string>((resolve, reject) => {
      execFile('curl', ['-sS', '-N', '--raw', `${base}/seed`], { timeout: 20_000 }, (error, stdout) =>
        error ? reject(error) : resolve(stdout),
      );
    });
    const expected =
      STAGES.map((stage) => `${Buffer.byteLength(stage).toString(16)}\r\n${stage}\r\n`).join('') + '0\r\n\r\n';
    assert.equal(raw, expected);
  });
});
