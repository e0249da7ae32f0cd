import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Hub } from '../../src/core/hub.js';
import { createHubServer } from '../../src/http/hub-server.js';
import { launchBrowser } from '../browser/helpers.js';
import { publish, waitFor } from '../helpers/hub.js';
import { h2Session, startSecureHub } from '../helpers/tls.js';

const CHANNELS = 12;

interface PageSources {
  sources: Record<number, { readyState: number; close(): void }>;
}

/** A page that opens one EventSource per channel (wall.1 … wall.12) and records what each receives. */
function twelveSources(req: IncomingMessage, res: ServerResponse): void {
  if (req.url !== '/twelve') {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(`<!doctype html><meta charset="utf-8"><title>twelve</title><script>
    window.got = {}; window.sources = {};
    for (let i = 1; i <= ${CHANNELS}; i++) {
      const source = new EventSource('/sub/wall.' + i);
      window.sources[i] = source;
      source.onmessage = (event) => (window.got[i] ||= []).push(event.data);
    }
    window.socket = (url) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const frames = [];
      window.wsFrames = frames;
      ws.onmessage = (event) => frames.push(JSON.parse(event.data));
      ws.onopen = () => { ws.send(JSON.stringify({ type: 'subscribe', channel: 'ws.wall' })); resolve(true); };
      ws.onerror = () => reject(new Error('WebSocket failed'));
    });
  </script>`);
}

function subscribed(hub: Hub): number[] {
  return Array.from({ length: CHANNELS }, (_, i) => i + 1).filter((i) => hub.subscriberCount(`wall.${i}`) > 0);
}

async function received(page: Page): Promise<Record<string, string[]>> {
  return page.evaluate(() => (globalThis as unknown as { got: Record<string, string[]> }).got);
}

test('Chromium over HTTPS: 12 EventSources to 12 channels of one origin all receive, all over HTTP/2', async (t) => {
  const secure = await startSecureHub(t, {}, twelveSources);
  const versions: string[] = [];
  let upgrades = 0;
  secure.server.server.on('request', (req: IncomingMessage) => {
    if (req.url?.startsWith('/sub/') === true) versions.push(req.httpVersion);
  });
  secure.server.server.on('upgrade', () => upgrades++);
  let extendedConnects = 0;
  secure.server.server.on('connect', (req: IncomingMessage) => {
    if (req.httpVersionMajor === 2) extendedConnects++;
  });
  const browser = await launchBrowser(t);
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(`${secure.url}/twelve`);
  await waitFor(() => subscribed(secure.hub).length === CHANNELS, 15_000, 'all twelve subscriptions');
  const session = h2Session(t, secure.url, secure.tls.cert);
  for (let i = 1; i <= CHANNELS; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': `/pub/wall.${i}` });
      req.on('response', (headers) => (headers[':status'] === 201 ? resolve() : reject(new Error('publish failed'))));
      req.on('error', reject);
      req.resume();
      req.end(`message ${i}`);
    });
  }
  await page.waitForFunction((n) => Object.keys((globalThis as unknown as { got: object }).got).length === n, CHANNELS);
  const got = await received(page);
  for (let i = 1; i <= CHANNELS; i++) assert.deepEqual(got[i], [`message ${i}`]);
  assert.equal(versions.length, CHANNELS);
  assert.deepEqual(new Set(versions), new Set(['2.0']), 'every subscription came over HTTP/2');

  // The hub announces RFC 8441 (extended CONNECT), and Chromium (156 here)
  // opens its WebSocket as one more stream on the page's HTTP/2 connection
  // instead of an HTTP/1.1 upgrade on a connection of its own. Should a later
  // Chromium go back to the upgrade, the last assertion says so.
  const wsUrl = `wss://127.0.0.1:${secure.port}/ws`;
  await page.evaluate((url) => (globalThis as unknown as { socket(u: string): Promise<boolean> }).socket(url), wsUrl);
  await waitFor(() => secure.hub.subscriberCount('ws.wall') === 1, 5000, 'the WebSocket subscription');
  await secure.hub.publish('ws.wall', 'over wss');
  await page.waitForFunction(() =>
    ((globalThis as unknown as { wsFrames: { type: string; data?: string }[] }).wsFrames ?? []).some(
      (f) => f.type === 'message' && f.data === 'over wss',
    ),
  );
  assert.equal(upgrades + extendedConnects, 1, 'one WebSocket handshake, of one kind or the other');
  const how = extendedConnects === 1 ? 'an HTTP/2 extended CONNECT (RFC 8441)' : 'an HTTP/1.1 upgrade';
  t.diagnostic(`Chromium ${browser.version()} opened wss:// as ${how}`);
  assert.equal(extendedConnects, 1, `Chromium ${browser.version()} used ${how}`);
});

test('Chromium over plain HTTP/1.1: the same page gets six streams; the seventh waits until one closes', async (t) => {
  const broker = new MemoryBroker();
  const hub = new Hub(broker);
  const server = createHubServer(hub, { shutdownGraceMs: 200 }, twelveSources);
  const { port } = await server.listen(0, '127.0.0.1');
  t.after(async () => {
    await server.close();
    await broker.close();
  });
  const url = `http://127.0.0.1:${port}`;
  const browser = await launchBrowser(t);
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(`${url}/twelve`);
  await waitFor(() => subscribed(hub).length === 6, 15_000, 'six subscriptions');
  for (let i = 1; i <= CHANNELS; i++) await publish(url, `wall.${i}`, `message ${i}`);
  const open = subscribed(hub);
  await page.waitForFunction((n) => Object.keys((globalThis as unknown as { got: object }).got).length === n, 6);
  // Every publish above was answered and the six open streams delivered theirs:
  // the other six EventSources never reached the hub at all.
  const got = await received(page);
  assert.deepEqual(Object.keys(got).map(Number).sort((a, b) => a - b), open);
  assert.equal(subscribed(hub).length, 6, 'still six: the browser holds the rest back');
  const stuck = await page.evaluate(
    (ids) => ids.map((i) => (globalThis as unknown as PageSources).sources[i]!.readyState),
    Array.from({ length: CHANNELS }, (_, i) => i + 1).filter((i) => !open.includes(i)),
  );
  assert.deepEqual(stuck, [0, 0, 0, 0, 0, 0], 'the other six are still CONNECTING');
  // Close two of the open ones: two of the waiting ones take their connections.
  await page.evaluate((ids) => {
    for (const i of ids) (globalThis as unknown as PageSources).sources[i]!.close();
  }, open.slice(0, 2));
  const newcomers = () => subscribed(hub).filter((i) => !open.includes(i)).length;
  await waitFor(() => newcomers() === 2, 10_000, 'two waiting ones to get in');
});
