import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { test } from 'node:test';
import { HttpResponseFormat, HttpStreamFormat, Publisher } from '@fanoutio/grip';
import { ServeGrip } from '@fanoutio/serve-grip';
import express, { type RequestHandler } from 'express';
import { httpRequest, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { freePort, startProxy } from './helpers.js';

/**
 * An origin written the way Fanout's libraries document it: Express with
 * serve-grip, which only lets a handler give GRIP instructions when the
 * request came through a GRIP proxy (it looks for Grip-Sig), and publishes
 * through @fanoutio/grip's Publisher to the proxy's control port.
 */
async function startExpressOrigin(
  port: number,
  controlUrl: string,
): Promise<{ serveGrip: ServeGrip; close(): Promise<void> }> {
  const serveGrip = new ServeGrip({ grip: { control_uri: controlUrl }, gripProxyRequired: true });
  const app = express();
  app.use(serveGrip as unknown as RequestHandler);
  app.get('/longpoll', (_req, res) => {
    const instruct = res.grip!.startInstruct();
    instruct.addChannel('chat');
    instruct.setHoldLongPoll(10);
    res.type('text/plain').send('nothing new\n');
  });
  app.get('/stream', (_req, res) => {
    const instruct = res.grip!.startInstruct();
    instruct.addChannel('feed');
    instruct.setHoldStream();
    instruct.setKeepAlive('\n', 20);
    res.type('text/plain').end('[stream open]\n');
  });
  app.post('/say', async (_req, res) => {
    await serveGrip.getPublisher().publishHttpResponse('chat', 'said through serve-grip\n');
    res.type('text/plain').send('published\n');
  });
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(port, '127.0.0.1', () => resolve(s));
  });
  return {
    serveGrip,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

test('serve-grip (Express) holds a response through kometa, answered by a publish from the origin ' +
  'itself', async (t) => {
  const port = await freePort();
  const stack = await startProxy(`http://127.0.0.1:${port}`);
  t.after(() => stack.close());
  const origin = await startExpressOrigin(port, stack.controlUrl);
  t.after(() => origin.close());

  const direct = await httpRequest(`http://127.0.0.1:${port}/longpoll`);
  assert.equal(direct.status, 501, 'without a GRIP proxy in front, serve-grip refuses (gripProxyRequired)');

  const held = httpRequest(`${stack.url}/longpoll`);
  await waitFor(() => stack.hub.subscriberCount('chat') === 1, 5000, 'the long-poll to be held');
  const said = await httpRequest(`${stack.url}/say`, { method: 'POST' });
  assert.equal(said.body, 'published\n');
  const answer = await held;
  assert.equal(answer.status, 200);
  assert.equal(answer.body, 'said through serve-grip\n');
  assert.match(String(answer.headers['content-type']), /^text\/plain/);
});

test("serve-grip streams through kometa; @fanoutio/grip's Publisher sends content and closes; hub subscribers see " +
  "the same items", async (t) => {
  const port = await freePort();
  const stack = await startProxy(`http://127.0.0.1:${port}`);
  t.after(() => stack.close());
  const origin = await startExpressOrigin(port, stack.controlUrl);
  t.after(() => origin.close());

  const sse = await StreamReader.open(`${stack.controlUrl}/sub/feed`, { Accept: 'text/event-stream' });
  t.after(() => sse.close());
  const stream = await StreamReader.open(`${stack.url}/stream`);
  t.after(() => stream.close());
  await stream.waitFor((r) => r.text === '[stream open]\n', 5000, 'the origin body');
  await waitFor(() => stack.hub.subscriberCount('feed') === 2, 5000, 'the stream hold and the SSE subscriber');

  const publisher = new Publisher({ control_uri: stack.controlUrl });
  await publisher.publishHttpStream('feed', 'first\n');
  await publisher.publishFormats(
    'feed',
    [new HttpStreamFormat('second\n'), new HttpResponseFormat({ body: 'for long-polls' })],
    'id-2',
    'id-1',
  );
  await publisher.publishHttpStream('feed', new HttpStreamFormat(new Uint8Array(Buffer.from('third, binary\n'))));
  await stream.waitFor((r) => r.text.endsWith('third, binary\n'), 5000, 'three items');
  assert.equal(stream.text, '[stream open]\nfirst\nsecond\nthird, binary\n');

  await publisher.publishFormats('feed', new HttpStreamFormat(null, true));
  await stream.waitFor((r) => r.ended, 5000, 'the close item to end the stream');

  await sse.waitFor((r) => r.events().filter((e) => e.event === 'grip').length === 4, 5000, 'four grip events on /sub');
  const items = sse
    .events()
    .filter((e) => e.event === 'grip')
    .map((e) => JSON.parse(e.data!) as Record<string, unknown>);
  assert.deepEqual(items[0], { formats: { 'http-stream': { content: 'first\n' } } });
  assert.deepEqual(items[1], {
    id: 'id-2',
    'prev-id': 'id-1',
    formats: { 'http-response': { body: 'for long-polls' }, 'http-stream': { content: 'second\n' } },
  });
  assert.deepEqual(items[3], { formats: { 'http-stream': { content: '', action: 'close' } } });
});
