import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type TestContext, test } from 'node:test';
import type { WireEvent } from '../../src/ops/stats-types.js';
import { inspectWire } from '../../src/ops/wire.js';

/** A node:http server on 127.0.0.1:0 with a few routes that frame their bodies differently. */
async function origin(t: TestContext): Promise<URL> {
  const server = createServer((req, res) => {
    if (req.url === '/length') {
      res.writeHead(200, { 'Content-Length': '5', ETag: '"v1"' }).end('hello');
    } else if (req.url === '/chunked') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('one');
      setTimeout(() => res.end('two'), 20);
    } else if (req.url === '/cached') {
      const fresh = req.headers['if-none-match'] === '"v1"';
      if (fresh) res.writeHead(304, { ETag: '"v1"' }).end();
      else res.writeHead(200, { ETag: '"v1"', 'Content-Length': '2' }).end('v1');
    } else if (req.url === '/until-close') {
      // HTTP/1.0-style body: no length, no chunking, ended by closing the connection.
      req.socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it');
      req.socket.end();
    } else {
      res.writeHead(404, { 'Content-Length': '0' }).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

function ofType<T extends WireEvent['type']>(events: WireEvent[], type: T): Extract<WireEvent, { type: T }>[] {
  return events.filter((e): e is Extract<WireEvent, { type: T }> => e.type === type);
}

test('the wire inspector reuses a kept-alive connection and records each body as the server framed it', async (t) => {
  const url = await origin(t);
  const result = await inspectWire({
    origin: url,
    requests: [{ path: '/chunked' }, { path: '/length' }, { path: '/cached', revalidate: true }],
    timeoutMs: 5000,
  });
  assert.equal(result.complete, true);
  assert.equal(ofType(result.events, 'connect').length, 1, 'one connection for all three');
  const requests = ofType(result.events, 'request');
  assert.deepEqual(requests.map((r) => r.reused), [false, true, true]);
  assert.match(requests[2]!.head, /^If-None-Match: "v1"$/m, 'revalidates with the ETag of the response before');
  assert.deepEqual(ofType(result.events, 'response').map((r) => r.status), [200, 200, 304]);
  const chunks = ofType(result.events, 'chunk');
  assert.deepEqual(
    chunks.map((c) => [c.index, c.framing, c.text]),
    [
      [0, 'chunked', 'one'],
      [0, 'chunked', 'two'],
      [1, 'read', 'hello'],
    ],
  );
  assert.deepEqual(ofType(result.events, 'end').map((e) => [e.index, e.bytes, e.chunks]), [
    [0, 6, 2],
    [1, 5, 1],
    [2, 0, 0],
  ]);
});

test('a body ended by closing the connection is complete, and the next request opens a new connection', async (t) => {
  const url = await origin(t);
  const requests = [{ path: '/until-close' }, { path: '/length' }];
  const result = await inspectWire({ origin: url, requests, timeoutMs: 5000 });
  assert.equal(result.complete, true);
  assert.equal(ofType(result.events, 'connect').length, 2);
  assert.equal(ofType(result.events, 'chunk')[0]!.text, 'all of it');
  assert.ok(ofType(result.events, 'close').some((c) => c.reason.includes('end of the response')));
  assert.deepEqual(ofType(result.events, 'request').map((r) => r.reused), [false, false]);
});

test('a server that is not there, or a stopped inspection, gives an incomplete result with the reason', async (t) => {
  const url = await origin(t);
  const refused = await inspectWire({ origin: new URL('http://127.0.0.1:9'), requests: [{ path: '/' }], timeoutMs: 5000 });
  assert.equal(refused.complete, false);
  assert.equal(ofType(refused.events, 'error').length, 1);
  const aborted = new AbortController();
  const requests = [{ path: '/chunked' }, { path: '/length' }];
  const stopped = inspectWire({ origin: url, requests, timeoutMs: 5000, signal: aborted.signal });
  aborted.abort();
  const result = await stopped;
  assert.equal(result.complete, false);
  assert.equal(ofType(result.events, 'close').at(-1)?.reason, 'stopped');
});
