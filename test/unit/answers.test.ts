import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { sendJson } from '../../src/http/send-json.js';
import { chunk, unchunk } from '../../src/transports/chunked.js';
import { RawClient } from '../hardening/raw.js';

/*
 * chunk() frames text straight into one Buffer, and sendJson ends a response
 * with write + uncork + end instead of end(body) (docs/benchmarks.md, "warm
 * servers"): both must give exactly the bytes the plain way gives.
 */

function framedTheLongWay(payload: string | Buffer): Buffer {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)}\r\n`), bytes, Buffer.from('\r\n')]);
}

test('chunk() gives the chunk of the payload as UTF-8 bytes, with its size in hex, for any text', () => {
  const texts = ['', 'a', 'data: héllo wörld\n\n', 'id: x\ndata: 🎉 \u00a0 \u2028\n\n'];
  texts.push('x'.repeat(4095), 'ü'.repeat(70_000));
  for (const text of texts) {
    const framed = chunk(text);
    assert.deepEqual(framed, framedTheLongWay(text), `the chunk of a ${text.length}-character text`);
    assert.equal(unchunk(framed).toString('utf8'), text);
  }
  const binary = Buffer.from([0, 1, 2, 0xff, 0x0d, 0x0a]);
  assert.deepEqual(chunk(binary), framedTheLongWay(binary));
});

/** A server whose every answer is sendJson's; the raw client sees exactly what goes on the wire. */
async function jsonServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => sendJson(res, 201, { path: req.url, text: 'grüße 🎉' }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function answers(text: string): { head: string; body: string }[] {
  const out: { head: string; body: string }[] = [];
  let rest = Buffer.from(text, 'latin1');
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    const head = rest.subarray(0, end).toString('latin1');
    const length = Number(/\r\nContent-Length: (\d+)/i.exec(head)![1]);
    out.push({ head, body: rest.subarray(end + 4, end + 4 + length).toString('utf8') });
    rest = rest.subarray(end + 4 + length);
  }
  return out;
}

test('sendJson answers keep-alive, pipelined, HTTP/1.0 and HEAD requests with the right head and body', async () => {
  const server = await jsonServer();
  try {
    const client = await RawClient.open(server.port);
    // Three pipelined requests on one connection: each answer whole, in order, the connection kept.
    client.send(['/a', '/b', '/c'].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join(''));
    await client.until((c) => (c.text.match(/HTTP\/1\.1 201/g) ?? []).length === 3 && c.text.endsWith('}'), '3');
    const three = answers(client.text);
    assert.deepEqual(
      three.map((answer) => JSON.parse(answer.body) as unknown),
      ['/a', '/b', '/c'].map((path) => ({ path, text: 'grüße 🎉' })),
    );
    for (const { head } of three) {
      assert.match(head, /^HTTP\/1\.1 201 Created\r\n/);
      assert.match(head, /\r\nContent-Type: application\/json; charset=utf-8\r\n/);
      assert.match(head, /\r\nCache-Control: no-store\r\n/);
      assert.match(head, /\r\nConnection: keep-alive\r\n/);
      assert.doesNotMatch(head, /Transfer-Encoding/i);
    }
    assert.equal(client.ended, false);
    client.close();

    const old = await RawClient.open(server.port);
    old.send('GET /old HTTP/1.0\r\n\r\n');
    await old.until((c) => c.ended, 'an HTTP/1.0 answer and the close after it');
    const [answer] = answers(old.text);
    assert.match(answer!.head, /^HTTP\/1\.1 201 Created\r\n/);
    assert.deepEqual(JSON.parse(answer!.body), { path: '/old', text: 'grüße 🎉' });

    const head = await RawClient.open(server.port);
    head.send('HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n');
    await head.until((c) => c.text.includes('"/after"'), 'the answer after a HEAD');
    const [toHead, after] = head.text.split(/(?=HTTP\/1\.1 201)/);
    assert.ok(toHead!.endsWith('\r\n\r\n'), 'a HEAD answer has no body');
    assert.deepEqual(JSON.parse(answers(after!)[0]!.body), { path: '/after', text: 'grüße 🎉' });
    head.close();
  } finally {
    await server.close();
  }
});
