import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { test } from 'node:test';
import { httpRequest, publish, waitFor } from '../helpers/hub.js';
import { RawChunkedRequest } from '../helpers/raw-chunked.js';
import { freePort, startNodeOrigin, startProxy } from './helpers.js';

test('an origin that is down gives 502 problem details with KOMETA_ERR_ORIGIN_UNAVAILABLE', async (t) => {
  const port = await freePort();
  const stack = await startProxy(`http://127.0.0.1:${port}`);
  t.after(() => stack.close());
  const response = await httpRequest(`${stack.url}/anything`);
  assert.equal(response.status, 502);
  assert.equal(response.headers['content-type'], 'application/problem+json');
  const problem = response.json<{ code: string; status: number }>();
  assert.equal(problem.code, 'KOMETA_ERR_ORIGIN_UNAVAILABLE');
  assert.equal(problem.status, 502);
  assert.equal(stack.errors[0]?.code, 'KOMETA_ERR_ORIGIN_UNAVAILABLE');
});

test('malformed GRIP headers give a clear 502, are logged, and leave a concurrent held request alone', async (t) => {
  const origin = await startNodeOrigin((req, res) => {
    const bad: Record<string, Record<string, string>> = {
      '/bad-hold': { 'Grip-Hold': 'forever', 'Grip-Channel': 'x' },
      '/no-channel': { 'Grip-Hold': 'response' },
      '/bad-channel': { 'Grip-Hold': 'response', 'Grip-Channel': 'spaces are not allowed' },
      '/bad-timeout': { 'Grip-Hold': 'response', 'Grip-Channel': 'x', 'Grip-Timeout': 'soon' },
      '/bad-keepalive': { 'Grip-Hold': 'stream', 'Grip-Channel': 'x', 'Grip-Keep-Alive': '\\q; format=cstring' },
      '/bad-link': { 'Grip-Link': 'no-brackets; rel=next' },
      '/off-origin': { 'Kometa-Defer': '1; next="http://elsewhere.invalid/"' },
      '/defer-and-hold': { 'Kometa-Defer': '1; next="/x"', 'Grip-Hold': 'stream', 'Grip-Channel': 'x' },
      '/defer-no-next': { 'Kometa-Defer': '1' },
    };
    if (req.url === '/held') {
      res.writeHead(200, { 'Grip-Hold': 'response', 'Grip-Channel': 'calm' });
      res.end('timeout');
      return;
    }
    res.writeHead(200, bad[req.url!] ?? {});
    res.end('body');
  });
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const logged: unknown[] = [];
  const onReport = (message: unknown): void => {
    logged.push(message);
  };
  subscribe('kometa:proxy:error', onReport);
  t.after(() => unsubscribe('kometa:proxy:error', onReport));

  const held = httpRequest(`${stack.url}/held`);
  await waitFor(() => stack.hub.subscriberCount('calm') === 1, 5000, 'the held request');
  const paths = [
    '/bad-hold',
    '/no-channel',
    '/bad-channel',
    '/bad-timeout',
    '/bad-keepalive',
    '/bad-link',
    '/off-origin',
    '/defer-and-hold',
    '/defer-no-next',
  ];
  for (const path of paths) {
    const response = await httpRequest(`${stack.url}${path}`);
    assert.equal(response.status, 502, path);
    const problem = response.json<{ code: string; detail: string }>();
    assert.equal(problem.code, 'KOMETA_ERR_ORIGIN_INSTRUCTION', path);
    assert.ok(problem.detail.length > 0);
  }
  assert.equal(stack.errors.length, paths.length, 'each logged through onError');
  assert.equal(logged.length, paths.length, 'and on the diagnostics channel');
  assert.deepEqual(
    stack.errors.map((e) => e.path),
    paths,
  );

  assert.equal(stack.hub.subscriberCount('calm'), 1, 'the held request is still held');
  await publish(stack.controlUrl, 'calm', 'still fine');
  assert.equal((await held).body, 'still fine');
});

test('a stage that fails after the response began cuts the response (no last chunk) rather than end it as if ' +
  'complete', async (t) => {
  const origin = await startNodeOrigin((req, res) => {
    if (req.url === '/') {
      res.writeHead(200, { 'Kometa-Defer': '0; next="/broken"' });
      res.end('part one');
    } else {
      res.writeHead(500);
      res.end('oops');
    }
  });
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const response = await new RawChunkedRequest(stack.port, '/').response;
  assert.equal(response.status, 200);
  assert.deepEqual(
    response.chunks.map((c) => c.data),
    ['part one'],
  );
  assert.equal(response.complete, false);
  assert.equal(stack.errors[0]?.phase, 'mid-response');
});

test('Kometa-Defer chains are bounded: more stages than maxStages cut the response', async (t) => {
  const origin = await startNodeOrigin((_req, res) => {
    res.writeHead(200, { 'Kometa-Defer': '0; next="/again"' });
    res.end('.');
  });
  const stack = await startProxy(origin.url, { maxStages: 5 });
  t.after(() => Promise.all([stack.close(), origin.close()]));
  const response = await new RawChunkedRequest(stack.port, '/').response;
  assert.equal(response.chunks.length, 6);
  assert.equal(response.complete, false);
  assert.match(stack.errors[0]?.detail ?? '', /more than 5 stages/);
});
