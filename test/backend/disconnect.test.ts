import assert from 'node:assert/strict';
import { test } from 'node:test';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';
import { Kometa, type StateChange } from '../../src/client/index.js';
import { AccessPolicy } from '../../src/auth/access.js';
import { httpRequest, publish, startHub, waitFor } from '../helpers/hub.js';
import { startKometa, startOwnRedis, uniquePrefix } from '../helpers/redis.js';
import { SECRET, postJson, token, wsFollower } from './helpers.js';

const claim = { subscribe: ['**'], publish: ['**'] };

/** An SSE subscriber (the eventsource package) that records when and why the hub ended it. */
function sseUser(url: string) {
  const source = new EventSource(url);
  const state = {
    opened: false,
    got: [] as string[],
    error: undefined as { code: string; detail: string; at: number } | undefined,
  };
  source.onopen = () => (state.opened = true);
  source.onmessage = (event) => state.got.push(event.data);
  source.addEventListener('kometa-error', (event) => {
    state.error = { ...(JSON.parse(event.data) as { code: string; detail: string }), at: Date.now() };
    source.close();
  });
  return { state, close: () => source.close() };
}

test('POST /disconnect {"user"} cuts that user\'s SSE, stream, WebSocket and long-poll connections on two nodes ' +
  'within 1 s, and no one else\'s', async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const args = [
    '--redis',
    redis.url,
    '--redis-prefix',
    uniquePrefix('disconnect'),
    '--jwt-secret',
    SECRET,
    '--publisher-key',
    'pk',
  ];
  const [a, b] = await Promise.all([startKometa(args), startKometa(args)]);
  t.after(() => Promise.all([a.kill(), b.kill()]));
  const u1 = await token(claim, 'u1');
  const u2 = await token(claim, 'u2');

  const sse = sseUser(`${a.url}/sub/room?token=${u1}`);
  const otherSse = sseUser(`${a.url}/sub/room?token=${u2}`);
  t.after(() => [sse, otherSse].forEach((s) => s.close()));
  const ws = await wsFollower(b.url, ['room'], `?token=${u1}`);
  const otherWs = await wsFollower(b.url, ['room'], `?token=${u2}`);
  t.after(() => [ws, otherWs].forEach((s) => s.close()));
  const auth = { Authorization: `Bearer ${u1}` };
  const polls = [a, b].map((node) =>
    httpRequest(`${node.url}/sub/room?transport=poll&timeout=30`, { headers: auth }).then((res) => ({
      res,
      at: Date.now(),
    })),
  );
  const stream = httpRequest(`${b.url}/sub/room?transport=stream`, { headers: auth }).then((res) => ({
    res,
    at: Date.now(),
  }));
  const client = new Kometa(b.url, { WebSocket, token: u1, backoff: { baseMs: 50, maxMs: 200 } });
  t.after(() => client.close());
  const states: StateChange[] = [];
  client.on('state', (change) => states.push(change));
  client.subscribe('room', {});
  await waitFor(
    () => sse.state.opened && otherSse.state.opened && client.state === 'connected',
    5000,
    'everyone connected',
  );
  await new Promise((r) => setTimeout(r, 300)); // the polls and the stream are held by now

  const started = Date.now();
  const res = await postJson(
    `${a.url}/disconnect`,
    { user: 'u1', reason: 'account closed' },
    { Authorization: 'Bearer pk' },
  );
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json<{ disconnected: number }>().disconnected, 2, 'node a ended its own two at once');

  const wsClosed = await ws.closed;
  assert.equal(wsClosed.code, 4410);
  const pollsDone = await Promise.all(polls);
  const streamed = await stream;
  await waitFor(
    () => sse.state.error !== undefined && client.state === 'disconnected',
    1000,
    'the SSE error and the client',
  );
  const within = Date.now() - started;
  t.diagnostic(`every connection of u1 on both nodes cut within ${within} ms`);
  assert.ok(within < 1000, `all cut within ${within} ms`);
  for (const poll of pollsDone) {
    assert.equal(poll.res.status, 410);
    assert.equal(poll.res.json<{ code: string }>().code, 'KOMETA_ERR_DISCONNECTED');
    assert.ok(poll.at - started < 1000);
  }
  assert.match(
    streamed.res.body,
    /"type":"error","code":"KOMETA_ERR_DISCONNECTED","detail":"Disconnected by the application: account closed/,
  );
  assert.equal(sse.state.error!.code, 'KOMETA_ERR_DISCONNECTED');
  assert.match(sse.state.error!.detail, /account closed/);

  // The kometa client says why, and stays disconnected.
  const last = states.at(-1)!;
  assert.equal(last.state, 'disconnected');
  assert.equal(last.reason, 'server-disconnect');
  assert.match(last.detail ?? '', /account closed/);
  await new Promise((r) => setTimeout(r, 800));
  assert.equal(client.state, 'disconnected');
  assert.equal(states.filter((s) => s.state === 'connecting').length, 1, 'never tried to come back');

  // u2 on both nodes is untouched.
  await httpRequest(`${a.url}/pub/room`, {
    method: 'POST',
    headers: { Authorization: 'Bearer pk' },
    body: 'still here',
  });
  await waitFor(
    () => otherSse.state.got.includes('still here') && otherWs.got.some((d) => d.data === 'still here'),
    3000,
    'u2 still served',
  );
  assert.equal(otherSse.state.error, undefined);
});

test('disconnect by client id ends one client only; with a channel, a WebSocket loses only that ' +
  'subscription', async (t) => {
  const hub = await startHub({
    http: { access: await AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: 'pk' }) },
  });
  t.after(() => hub.close());
  const u1 = await token(claim, 'u1');
  const one = new Kometa(hub.url, { WebSocket, token: u1 });
  const two = new Kometa(hub.url, { WebSocket, token: u1 });
  t.after(() => [one, two].forEach((c) => c.close()));
  const errors: string[] = [];
  for (const client of [one, two]) client.subscribe('x', {});
  two.subscribe('y', { onError: (error) => errors.push(`${error.channel} ${error.code}`) });
  await waitFor(() => hub.hub.subscriberCount('x') === 2 && hub.hub.subscriberCount('y') === 1);
  const forbidden = await postJson(
    `${hub.url}/disconnect`,
    { client: one.clientId },
    { Authorization: `Bearer ${u1}` },
  );
  assert.equal(forbidden.status, 403);
  const bad = await postJson(`${hub.url}/disconnect`, { nobody: true }, { Authorization: 'Bearer pk' });
  assert.equal(bad.json<{ code: string }>().code, 'KOMETA_ERR_DISCONNECT_TARGET');

  const res = await postJson(`${hub.url}/disconnect`, { client: one.clientId }, { Authorization: 'Bearer pk' });
  assert.equal(res.json<{ disconnected: number }>().disconnected, 1);
  await waitFor(() => one.state === 'disconnected' && hub.hub.subscriberCount('x') === 1);
  assert.equal(two.state, 'connected');

  await postJson(`${hub.url}/disconnect`, { user: 'u1', channel: 'y' }, { Authorization: 'Bearer pk' });
  await waitFor(() => errors.length === 1 && hub.hub.subscriberCount('y') === 0);
  assert.deepEqual(errors, ['y KOMETA_ERR_DISCONNECTED']);
  assert.equal(two.state, 'connected');
  assert.equal(hub.hub.subscriberCount('x'), 1);
  await publish(hub.url, 'x', 'hi').catch(() => undefined);
});

for (const transport of ['sse', 'poll'] as const) {
  test(`the kometa client over ${transport} stays disconnected after POST /disconnect and says why`, async (t) => {
    const hub = await startHub();
    t.after(() => hub.close());
    const client = new Kometa(hub.url, {
      transports: [transport],
      clientId: `tab-${transport}`,
      backoff: { baseMs: 20, maxMs: 50 },
      pollTimeoutSeconds: 5,
    });
    t.after(() => client.close());
    const states: StateChange[] = [];
    client.on('state', (change) => states.push(change));
    client.subscribe('z', {});
    await waitFor(() => client.state === 'connected' && hub.hub.subscriberCount('z') === 1);
    await new Promise((r) => setTimeout(r, 100));
    const res = await postJson(`${hub.url}/disconnect`, { client: `tab-${transport}`, reason: 'bye' });
    assert.equal(res.json<{ disconnected: number }>().disconnected, 1);
    await waitFor(() => client.state === 'disconnected', 2000, 'disconnected');
    assert.equal(states.at(-1)!.reason, 'server-disconnect');
    assert.match(states.at(-1)!.detail ?? '', /bye/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(hub.hub.subscriberCount('z'), 0);
    assert.equal(client.state, 'disconnected');
  });
}

test('{"revoke": true} refuses the user\'s current tokens on every node, on nodes started later and after a ' +
  'restart; a new token works', async (t) => {
  const { dataDirArgs } = await import('../helpers/data-dir.js');
  const { SignJWT } = await import('jose');
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const args = [
    '--redis',
    redis.url,
    '--redis-prefix',
    uniquePrefix('revoke'),
    '--jwt-secret',
    SECRET,
    '--publisher-key',
    'pk',
  ];
  const [a, b] = await Promise.all([startKometa(args), startKometa(args)]);
  t.after(() => Promise.all([a.kill(), b.kill()]));
  const old = await new SignJWT({ kometa: claim })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('u7')
    .setIssuedAt(Math.floor(Date.now() / 1000) - 5)
    .sign(new TextEncoder().encode(SECRET));
  const withToken = (base: string, jwt: string) =>
    httpRequest(`${base}/sub/r?transport=poll&timeout=0`, { headers: { Authorization: `Bearer ${jwt}` } });
  assert.equal((await withToken(b.url, old)).status, 200);
  const res = await postJson(`${a.url}/disconnect`, { user: 'u7', revoke: true }, { Authorization: 'Bearer pk' });
  assert.equal(res.status, 200, res.body);
  assert.ok(Date.parse(res.json<{ revokedUntil: string }>().revokedUntil) > Date.now() + 23 * 3600_000);
  await new Promise((r) => setTimeout(r, 200));
  for (const node of [a, b]) {
    const refused = await withToken(node.url, old);
    assert.equal(refused.status, 401);
    assert.equal(refused.json<{ code: string }>().code, 'KOMETA_ERR_TOKEN_REVOKED');
  }
  const late = await startKometa(args);
  t.after(() => late.kill());
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await withToken(late.url, old)).status, 401, 'a node started later knows');
  const other = await token(claim, 'u8');
  assert.equal((await withToken(a.url, other)).status, 200, 'other users are not affected');
  await new Promise((r) => setTimeout(r, 1100));
  const fresh = await token(claim, 'u7');
  assert.equal((await withToken(b.url, fresh)).status, 200, 'a token issued after the revocation works');

  // The durable store keeps revocations across a restart.
  const durable = [...dataDirArgs('revoke'), '--jwt-secret', SECRET, '--publisher-key', 'pk'];
  let single = await startKometa(durable);
  t.after(() => single.kill());
  await postJson(`${single.url}/disconnect`, { user: 'u7', revoke: 60 }, { Authorization: 'Bearer pk' });
  await single.kill('SIGKILL');
  single = await startKometa(durable);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await withToken(single.url, old)).json<{ code: string }>().code, 'KOMETA_ERR_TOKEN_REVOKED');
  const bad = await postJson(`${single.url}/disconnect`, { client: 'x', revoke: true }, { Authorization: 'Bearer pk' });
  assert.equal(bad.json<{ code: string }>().code, 'KOMETA_ERR_DISCONNECT_TARGET');
});
