import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { httpRequest, publish, waitFor } from '../helpers/hub.js';
import { sseCollector, startKometa } from '../helpers/redis.js';
import { StreamReader } from '../helpers/streams.js';
import { startNginx } from './nginx-helpers.js';

/**
 * The issue's case, with nginx's defaults (proxy_read_timeout 60 s) and
 * kometa's (heartbeat 15 s): every transport through nginx stays quiet for
 * 70 s, longer than nginx lets an upstream connection be silent, and the
 * message published then still arrives — on the same connections, not after a
 * reconnect. Slow by nature (70 s); it runs beside the other test files.
 */
test('through nginx with the documented config, SSE, stream, long-poll and WebSocket survive a 70 s quiet period', { timeout: 180_000 }, async (t) => {
  const kometa = await startKometa(['--trust-proxy', '127.0.0.1', '--poll-timeout-max', '50']);
  t.after(() => kometa.kill('SIGTERM'));
  const nginx = await startNginx(kometa.port);
  t.after(() => nginx.stop());
  const channel = 'quiet';

  const sse = sseCollector(`${nginx.url}/sub/${channel}`);
  t.after(() => sse.close());
  const stream = await StreamReader.open(`${nginx.url}/sub/${channel}?transport=stream`);
  t.after(() => stream.close());
  assert.equal(stream.status, 200);

  const ws = new WebSocket(`${nginx.url.replace('http', 'ws')}/ws`, { perMessageDeflate: false });
  const wsFrames: { type: string; data?: string }[] = [];
  let wsClosed: number | undefined;
  ws.on('message', (data) => wsFrames.push(JSON.parse(data.toString())));
  ws.on('close', (code) => (wsClosed = code));
  ws.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  t.after(() => ws.terminate());
  ws.send(JSON.stringify({ type: 'subscribe', channel }));
  await waitFor(() => wsFrames.some((f) => f.type === 'subscribed'), 10_000, 'the WebSocket subscription');

  // Long-poll: one poll after another (each held up to 30 s), as a client does; every answer must be kometa's 200.
  const pollStatuses: number[] = [];
  const polled: string[] = [];
  let polling = true;
  const poller = (async () => {
    let since = '';
    while (polling) {
      const res = await httpRequest(`${nginx.url}/sub/${channel}?transport=poll${since ? `&since=${encodeURIComponent(since)}` : ''}`);
      pollStatuses.push(res.status);
      if (res.status !== 200) return;
      const body = res.json<{ cursor: string; messages: { data: string }[] }>();
      since = body.cursor;
      polled.push(...body.messages.map((m) => m.data));
    }
  })();
  await waitFor(() => sse.opens() === 1, 10_000, 'the SSE stream');

  await new Promise((resolve) => setTimeout(resolve, 70_000));
  assert.equal(sse.received.length, 0, 'nothing was published during the quiet period');

  await publish(nginx.url, channel, 'after 70 quiet seconds');
  await waitFor(() => sse.received.some((m) => m.data === 'after 70 quiet seconds'), 15_000, 'SSE delivery');
  await stream.waitFor((r) => r.text.includes('"data":"after 70 quiet seconds"'), 15_000, 'stream delivery');
  await waitFor(() => wsFrames.some((f) => f.type === 'message' && f.data === 'after 70 quiet seconds'), 15_000, 'WebSocket delivery');
  await waitFor(() => polled.includes('after 70 quiet seconds'), 40_000, 'long-poll delivery');
  polling = false;

  assert.equal(sse.opens(), 1, 'the SSE connection was never cut and reopened');
  assert.equal(stream.ended, false, 'the stream is still open');
  assert.ok(stream.text.split('{"type":"heartbeat"}').length - 1 >= 3, 'heartbeats kept the stream busy');
  assert.equal(wsClosed, undefined, 'the WebSocket was never closed');
  assert.ok(pollStatuses.length >= 3, `polls went on through the quiet period (${pollStatuses.length})`);
  assert.deepEqual([...new Set(pollStatuses)], [200], 'every long-poll was answered by kometa, none by an nginx timeout');
  ws.close();
  await poller.catch(() => {});
});
