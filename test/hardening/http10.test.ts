import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { Comet } from '../../src/comet/comet.js';
import { createSeedHandler } from '../../src/comet/seed.js';
import { startHub } from '../helpers/hub.js';
import { frameworks, startCometServers } from '../helpers/comet-servers.js';
import { RawClient } from './raw.js';

/*
 * RFC 9112 section 6.1: "A server MUST NOT send a response containing
 * Transfer-Encoding unless the corresponding request indicates HTTP/1.1 (or
 * later minor revisions)." An HTTP/1.0 subscriber gets the same stream with
 * no framing at all, and the end of the stream is the end of the connection.
 */
const run = promisify(execFile);

for (const [transport, query, firstLine] of [
  ['SSE', '', 'retry: '],
  ['the chunked stream', '?transport=stream', '{"type":"live"'],
] as const) {
  test(`an HTTP/1.0 request for ${transport} gets an unframed body that ends with the connection`, async () => {
    const hub = await startHub();
    const client = await RawClient.open(hub.port);
    try {
      client.send(`GET /sub/h10${query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n`);
      await client.until((c) => c.head !== '' && hub.hub.subscriberCount('h10') === 1, 'the head');
      assert.match(client.head, /^HTTP\/1\.1 200 /);
      assert.doesNotMatch(client.head, /transfer-encoding/i);
      assert.match(client.head, /\r\nConnection: close/i);
      await hub.hub.publish('h10', 'hello');
      await client.until((c) => c.body.includes('hello'), 'the message');
      await hub.close();
      await client.until((c) => c.ended, 'the end of the connection');
      assert.ok(client.body.startsWith(firstLine), `unframed body: ${JSON.stringify(client.body.slice(0, 40))}`);
      assert.doesNotMatch(client.body, /^[0-9a-f]+\r\n/m, 'no chunk-size lines');
      assert.ok(!client.body.endsWith('0\r\n\r\n'), 'no last chunk');
      assert.match(client.body, /shutdown/);
    } finally {
      client.close();
      await hub.close();
    }
  });
}

test('curl --http1.0 reads an SSE stream from the hub without chunk framing', async () => {
  const hub = await startHub();
  try {
    const curl = run('curl', ['-s', '--http1.0', '-N', '-i', `${hub.url}/sub/curl10`], { encoding: 'latin1' });
    while (hub.hub.subscriberCount('curl10') === 0) await new Promise((r) => setTimeout(r, 10));
    await hub.hub.publish('curl10', 'over-http-1.0');
    await new Promise((r) => setTimeout(r, 50));
    await hub.close();
    const { stdout } = await curl;
    const [head, body] = stdout.split('\r\n\r\n', 2) as [string, string];
    assert.doesNotMatch(head, /transfer-encoding/i);
    assert.match(body, /^retry: \d+\n\n/);
    assert.match(body, /\ndata: over-http-1\.0\n\n/);
  } finally {
    await hub.close();
  }
});

test('comet handlers answer HTTP/1.0 unframed in every framework', async () => {
  const comet = new Comet();
  const servers = await startCometServers({ '/seed': createSeedHandler(5) }, comet);
  try {
    for (const framework of frameworks) {
      const { stdout } = await run('curl', ['-s', '--http1.0', '-i', `http://127.0.0.1:${servers.ports[framework]}/seed`], { encoding: 'latin1' });
      const [head, body] = stdout.split('\r\n\r\n', 2) as [string, string];
      assert.doesNotMatch(head, /transfer-encoding/i, framework);
      assert.equal(body, 'First content<br />stage1<br />stage2<br />stage3<br />last_stage4<br />', framework);
    }
  } finally {
    await servers.close();
  }
});
