import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { AccessPolicy } from '../../src/auth/access.js';
import { type TestHub, httpRequest, startHub } from '../helpers/hub.js';

/*
 * RFC 9110 section 11.6.1: "A server generating a 401 (Unauthorized) response
 * MUST send a WWW-Authenticate header field containing at least one
 * challenge." Every 401 the hub sends carries the same Bearer challenge.
 */
let hub: TestHub;

before(async () => {
  hub = await startHub({ http: { access: await AccessPolicy.create({ tokens: { secret: 'a-secret-that-is-long-enough-for-hs256' } }) } });
});

after(async () => {
  await hub.close();
});

const CHALLENGE = 'Bearer realm="kometa"';

test('a 401 from /sub names the Bearer scheme', async () => {
  const res = await httpRequest(`${hub.url}/sub/room?transport=poll&timeout=0`);
  assert.equal(res.status, 401);
  assert.equal(res.headers['www-authenticate'], CHALLENGE);
});

test('a 401 from /pub names the Bearer scheme, also for a bad token', async () => {
  const anonymous = await httpRequest(`${hub.url}/pub/room`, { method: 'POST', body: 'x' });
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.headers['www-authenticate'], CHALLENGE);
  const forged = await httpRequest(`${hub.url}/pub/room`, { method: 'POST', body: 'x', headers: { Authorization: 'Bearer not.a.token' } });
  assert.equal(forged.status, 401);
  assert.match(String(forged.headers['www-authenticate']), /^Bearer realm="kometa"/);
});

test('a refused /ws handshake answers 401 with the Bearer challenge', async () => {
  const res = await new Promise<{ status: number; challenge: string | undefined }>((resolve, reject) => {
    const req = request(`${hub.url}/ws`, {
      headers: { Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==', Authorization: 'Bearer not.a.token' },
    });
    req.on('response', (r) => {
      r.resume();
      resolve({ status: r.statusCode ?? 0, challenge: r.headers['www-authenticate'] });
    });
    req.on('upgrade', () => reject(new Error('upgraded with a forged token')));
    req.on('error', reject);
    req.end();
  });
  assert.equal(res.status, 401);
  assert.match(String(res.challenge), /^Bearer realm="kometa"/);
});

test('a 403 carries no challenge: the credential was understood', async () => {
  const res = await httpRequest(`${hub.url}/sub/room?transport=poll&timeout=0`, { headers: { Origin: 'https://elsewhere.example' } });
  assert.equal(res.status, 403);
  assert.equal(res.headers['www-authenticate'], undefined);
});
