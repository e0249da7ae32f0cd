import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normalizeAddress, parseTrustProxy } from '../../src/http/client-address.js';
import { httpRequest, startHub } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { startNodeOrigin, startProxy } from '../proxy/helpers.js';

test('client-address: without --trust-proxy the header is never believed', () => {
  assert.equal(parseTrustProxy(''), undefined);
  assert.equal(parseTrustProxy(undefined), undefined);
  assert.equal(parseTrustProxy('0'), undefined);
});

test('client-address: a list of proxies is read from the right, stopping at the first untrusted address', () => {
  const trust = parseTrustProxy('127.0.0.1, 10.0.0.0/8')!;
  assert.ok(trust.trusts('127.0.0.1'));
  assert.ok(trust.trusts('::ffff:10.1.2.3'), 'an IPv4-mapped peer is its IPv4 address');
  assert.ok(!trust.trusts('192.0.2.1'));
  // nginx on 127.0.0.1 appended what it saw.
  assert.equal(trust.clientAddress('127.0.0.1', '203.0.113.7'), '203.0.113.7');
  // A client that sends its own X-Forwarded-For cannot choose its address: the forged entry sits left of the real one.
  assert.equal(trust.clientAddress('127.0.0.1', '1.1.1.1, 203.0.113.7'), '203.0.113.7');
  // Two trusted hops (an internal balancer, then nginx): skip both.
  assert.equal(trust.clientAddress('127.0.0.1', '203.0.113.7, 10.0.0.5'), '203.0.113.7');
  // Repeated header lines count as one list.
  assert.equal(trust.clientAddress('127.0.0.1', ['198.51.100.1', '10.0.0.5']), '198.51.100.1');
  // A peer that is not a trusted proxy is the client, whatever it claims.
  assert.equal(trust.clientAddress('192.0.2.1', '203.0.113.7'), '192.0.2.1');
  // No header from a trusted proxy: the proxy itself. Garbage: the last address a trusted hop vouched for.
  assert.equal(trust.clientAddress('127.0.0.1', undefined), '127.0.0.1');
  assert.equal(trust.clientAddress('127.0.0.1', 'not-an-ip, 10.0.0.5'), '10.0.0.5');
  // Everything trusted: the leftmost.
  assert.equal(trust.clientAddress('127.0.0.1', '10.9.9.9, 10.0.0.5'), '10.9.9.9');
});

test('client-address: named ranges, IPv6 and a hop count', () => {
  const named = parseTrustProxy('loopback,private')!;
  assert.ok(named.trusts('::1') && named.trusts('127.0.0.2') && named.trusts('192.168.1.1') && named.trusts('fd00::1'));
  assert.ok(!named.trusts('8.8.8.8'));
  assert.equal(named.clientAddress('::1', '2001:db8::1'), '2001:db8::1');
  const one = parseTrustProxy('1')!;
  assert.equal(one.clientAddress('192.0.2.9', '1.1.1.1, 203.0.113.7'), '203.0.113.7', 'one hop: the last entry');
  assert.equal(parseTrustProxy(2)!.clientAddress('192.0.2.9', '1.1.1.1, 203.0.113.7'), '1.1.1.1');
  assert.equal(one.clientAddress('192.0.2.9', undefined), '192.0.2.9', 'no header: the peer');
  assert.equal(normalizeAddress(' ::FFFF:1.2.3.4 '), '1.2.3.4');
});

test('client-address: a typo is an error at start, not a silently open door', () => {
  for (const bad of ['localhost', '10.0.0.0/33', '1.2.3', '::1/129', '10.0.0.0/8/1', '33', '-1']) {
    assert.throws(() => parseTrustProxy(bad), /--trust-proxy/, bad);
  }
});

const publish = (url: string, forwardedFor: string) =>
  httpRequest(`${url}/pub/c`, { method: 'POST', body: 'x', headers: { 'X-Forwarded-For': forwardedFor } }).then((r) => r.status);

test('the anonymous publish rate: per proxy address without --trust-proxy, per forwarded client with it', async (t) => {
  const plain = await startHub({ http: { publishRate: 1 } });
  t.after(() => plain.close());
  const a = [await publish(plain.url, '203.0.113.1'), await publish(plain.url, '203.0.113.1'), await publish(plain.url, '203.0.113.1')];
  assert.ok(a.includes(429), `the burst is spent: ${a}`);
  assert.equal(await publish(plain.url, '203.0.113.2'), 429, 'untrusted: another X-Forwarded-For changes nothing');

  const trusting = await startHub({ http: { publishRate: 1, trustProxy: parseTrustProxy('loopback') } });
  t.after(() => trusting.close());
  const b = [await publish(trusting.url, '203.0.113.1'), await publish(trusting.url, '203.0.113.1'), await publish(trusting.url, '203.0.113.1')];
  assert.ok(b.includes(429), `client 1 is limited: ${b}`);
  assert.equal(await publish(trusting.url, '203.0.113.2'), 201, 'client 2 has a budget of its own');
  assert.equal(await publish(trusting.url, '203.0.113.9, 203.0.113.1'), 429, 'a forged entry on the left does not buy client 1 a new budget');
});

test('--max-connections-per-ip behind a trusted proxy counts open requests per forwarded client', async (t) => {
  const hub = await startHub({ http: { maxConnectionsPerIp: 2, trustProxy: parseTrustProxy('127.0.0.1') } });
  t.after(() => hub.close());
  const open = (client: string) => StreamReader.open(`${hub.url}/sub/c?transport=stream`, { 'X-Forwarded-For': client });
  const readers = [await open('198.51.100.1'), await open('198.51.100.1'), await open('198.51.100.2')];
  t.after(() => readers.forEach((r) => r.close()));
  const third = await httpRequest(`${hub.url}/sub/c?transport=poll&timeout=0`, { headers: { 'X-Forwarded-For': '198.51.100.1' } });
  assert.equal(third.status, 429);
  assert.equal(third.json<{ code: string }>().code, 'KOMETA_ERR_TOO_MANY_CONNECTIONS');
  assert.equal((await httpRequest(`${hub.url}/sub/c?transport=poll&timeout=0`, { headers: { 'X-Forwarded-For': '198.51.100.3' } })).status, 200);
  readers[0]!.close();
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal((await httpRequest(`${hub.url}/sub/c?transport=poll&timeout=0`, { headers: { 'X-Forwarded-For': '198.51.100.1' } })).status, 200, 'a closed stream frees its place');

  // Without --trust-proxy the header is ignored: every request comes from 127.0.0.1.
  const plain = await startHub({ http: { maxConnectionsPerIp: 2 } });
  t.after(() => plain.close());
  const held = [await StreamReader.open(`${plain.url}/sub/c?transport=stream`, { 'X-Forwarded-For': '198.51.100.1' }), await StreamReader.open(`${plain.url}/sub/c?transport=stream`, { 'X-Forwarded-For': '198.51.100.2' })];
  t.after(() => held.forEach((r) => r.close()));
  assert.equal((await httpRequest(`${plain.url}/sub/c?transport=poll&timeout=0`, { headers: { 'X-Forwarded-For': '198.51.100.3' } })).status, 429);
});

test('kometa proxy keeps X-Forwarded-Proto from a trusted proxy, and sets its own otherwise', async (t) => {
  let seen: Record<string, string | string[] | undefined> = {};
  const origin = await startNodeOrigin((req, res) => {
    seen = req.headers;
    res.end('ok');
  });
  t.after(() => origin.close());
  const trusting = await startProxy(origin.url, { trustProxy: parseTrustProxy('loopback') });
  t.after(() => trusting.close());
  await httpRequest(`${trusting.url}/x`, { headers: { 'X-Forwarded-Proto': 'https', 'X-Forwarded-For': '203.0.113.7' } });
  assert.equal(seen['x-forwarded-proto'], 'https');
  assert.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1');

  const plain = await startProxy(origin.url);
  t.after(() => plain.close());
  await httpRequest(`${plain.url}/x`, { headers: { 'X-Forwarded-Proto': 'https' } });
  assert.equal(seen['x-forwarded-proto'], 'http', 'an untrusted client cannot claim https');
});
