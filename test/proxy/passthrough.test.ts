import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { validateSig } from '@fanoutio/grip';
import { httpRequest } from '../helpers/hub.js';
import { startNodeOrigin, startProxy } from './helpers.js';

test('an ordinary response passes through untouched: status, reason, repeated headers, body, ' +
  'Content-Length', async (t) => {
  const origin = await startNodeOrigin((req, res) => {
    res.writeHead(201, 'Made It', [
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'Content-Type',
      'text/plain',
      'Content-Length',
      '5',
      'Keep-Alive',
      'timeout=9',
    ]);
    res.end('hello');
  });
  const stack = await startProxy(origin.url);
  t.after(() => Promise.all([stack.close(), origin.close()]));

  const response = await new Promise<{ status: number; reason: string; raw: string[]; body: string }>(
    (resolve, reject) => {
      request(`${stack.url}/thing?x=1`, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () =>
          resolve({ status: res.statusCode!, reason: res.statusMessage!, raw: res.rawHeaders, body }),
        );
      })
        .on('error', reject)
        .end();
    },
  );
  assert.equal(response.status, 201);
  assert.equal(response.reason, 'Made It');
  assert.equal(response.body, 'hello');
  const names = response.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  assert.deepEqual(
    response.raw.filter((_, i) => i % 2 === 1 && response.raw[i - 1] === 'Set-Cookie'),
    ['a=1', 'b=2'],
  );
  assert.ok(names.includes('content-length'), 'Content-Length kept');
  assert.ok(!response.raw.includes('timeout=9'), "the origin connection's Keep-Alive is not forwarded");
});

test("the origin sees the client's request with X-Forwarded-*, a Grip-Sig of its own and no hop-by-hop fields; " +
  "bodies stream through", async (t) => {
  let seen: { url: string; headers: Record<string, string | string[] | undefined>; body: string } | undefined;
  const origin = await startNodeOrigin((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      seen = { url: req.url!, headers: req.headers, body };
      res.end('ok');
    });
  });
  const stack = await startProxy(origin.url, { sigKey: 'sekrit' });
  t.after(() => Promise.all([stack.close(), origin.close()]));

  const response = await httpRequest(`${stack.url}/form?q=%20x`, {
    method: 'POST',
    headers: {
      'Content-Type': 'text/plain',
      'X-Forwarded-For': '10.0.0.1',
      'Grip-Sig': 'forged',
      Connection: 'keep-alive, X-Secret-Hop',
      'X-Secret-Hop': 'drop me',
      Cookie: 'session=abc',
    },
    body: 'the body',
  });
  assert.equal(response.status, 200);
  assert.ok(seen);
  assert.equal(seen.url, '/form?q=%20x');
  assert.equal(seen.body, 'the body');
  assert.equal(seen.headers['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${stack.port}`);
  assert.equal(seen.headers['x-secret-hop'], undefined);
  assert.equal(seen.headers.cookie, 'session=abc');
  const sig = seen.headers['grip-sig'];
  assert.equal(typeof sig, 'string');
  assert.notEqual(sig, 'forged');
  assert.equal(await validateSig(sig as string, 'sekrit'), true, 'GRIP libraries accept the signature');
  assert.equal(await validateSig(sig as string, 'other key'), false);
});
