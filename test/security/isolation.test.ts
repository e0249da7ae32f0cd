import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { AccessPolicy } from '../../src/auth/access.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

const SECRET = 'isolation-secret-isolation-secret-123';
const sign = (claim: Record<string, unknown>, exp?: number) => {
  const jwt = new SignJWT({ kometa: claim }).setProtectedHeader({ alg: 'HS256' });
  if (exp !== undefined) jwt.setExpirationTime(exp);
  return jwt.sign(new TextEncoder().encode(SECRET));
};

function openWs(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ ws: WebSocket; frames: Record<string, unknown>[]; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const frames: Record<string, unknown>[] = [];
    const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
    ws.on('message', (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
    ws.on('open', () => resolve({ ws, frames, closed }));
    ws.on('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    ws.on('error', reject);
  });
}

test('no message reaches a subscriber whose credential does not cover its channel, by any route', async (t) => {
  const hub = await startHub({
    http: {
      access: await AccessPolicy.create({
        tokens: { secret: SECRET },
        publisherKey: 'pub-key',
        allowedOrigins: ['https://app.example'],
      }),
    },
  });
  t.after(() => hub.close());
  const reader = await sign({ subscribe: ['allowed.*'] });
  const bearer = { Authorization: `Bearer ${reader}` };
  const everything: string[] = [];
  const refusals: string[] = [];

  // Publish on both channels all along.
  let n = 0;
  const publishBoth = async () => {
    n++;
    for (const channel of ['allowed.1', 'secret.1']) {
      const res = await httpRequest(`${hub.url}/pub/${channel}`, {
        method: 'POST',
        headers: { Authorization: 'Bearer pub-key' },
        body: `${channel === 'secret.1' ? 'SECRET' : 'public'}-${n}`,
      });
      assert.equal(res.status, 201);
    }
  };
  await publishBoth();
  const secretCursor = (
    await httpRequest(`${hub.url}/channels/secret.1`, { headers: { Authorization: 'Bearer pub-key' } })
  ).json<{ last: string }>().last;
  const allowedCursor = (await httpRequest(`${hub.url}/channels/allowed.1`, { headers: bearer })).json<{
    last: string;
  }>().last;

  const httpAttempts: [string, string, Record<string, string>][] = [
    ['the channel itself', '/sub/secret.1?transport=poll&timeout=0', bearer],
    ['a wildcard as a channel name', '/sub/allowed.*?transport=poll&timeout=0', bearer],
    ['a pattern that matches everything', '/sub/**?transport=poll&timeout=0', bearer],
    ['a multi-channel subscription', '/sub?channel=allowed.1&channel=secret.1&transport=poll&timeout=0', bearer],
    ['the token in the query', `/sub/secret.1?transport=poll&timeout=0&token=${reader}`, {}],
    ['no credential at all', '/sub/secret.1?transport=poll&timeout=0', {}],
    ['channel info', '/channels/secret.1', bearer],
    ['a resume cursor of the secret channel on it', `/sub/secret.1?transport=poll&since=${secretCursor}`, bearer],
    ['SSE with Last-Event-ID of the secret channel', '/sub/secret.1', { ...bearer, 'Last-Event-ID': secretCursor }],
    ['a cross-site page', '/sub/allowed.1?transport=poll&timeout=0', { ...bearer, Origin: 'https://evil.example' }],
  ];
  for (const [label, path, headers] of httpAttempts) {
    const res = await httpRequest(`${hub.url}${path}`, { headers });
    everything.push(res.body);
    assert.ok(res.status >= 400, `${label}: refused (got ${res.status})`);
    refusals.push(`${label}: ${res.status}`);
  }

  // A cursor that names the secret channel, on a subscription to the allowed one: the foreign entry is ignored.
  const mixed = await httpRequest(
    `${hub.url}/sub/allowed.1?transport=poll&since=${encodeURIComponent(`${secretCursor.replace(/~\d+$/, '~0')},${allowedCursor.replace(/~\d+$/, '~0')}`)}`,
    { headers: bearer },
  );
  assert.equal(mixed.status, 200);
  everything.push(mixed.body);
  assert.deepEqual(
    mixed.json<{ messages: { channel: string }[] }>().messages.map((m) => m.channel),
    ['allowed.1'],
  );

  // Streams that stay open while more is published.
  const sse = await StreamReader.open(`${hub.url}/sub/allowed.1`, bearer);
  const ws = await openWs(`ws://127.0.0.1:${hub.port}/ws`, bearer);
  ws.ws.send(JSON.stringify({ type: 'subscribe', channel: 'secret.1', ref: 1 }));
  ws.ws.send(
    JSON.stringify({ type: 'subscribe', channel: 'secret.1', cursor: secretCursor.replace(/~\d+$/, '~0'), ref: 2 }),
  );
  ws.ws.send(JSON.stringify({ type: 'subscribe', channel: 'allowed.1', ref: 3 }));
  ws.ws.send(JSON.stringify({ type: 'publish', channel: 'secret.1', data: 'forged', ref: 4 }));
  await waitFor(
    () => ws.frames.filter((f) => f.ref !== undefined).length >= 4,
    5000,
    'answers to the WebSocket requests',
  );
  assert.deepEqual(
    ws.frames
      .filter((f) => f.ref !== undefined)
      .map((f) => [f.ref, f.type, f.code])
      .sort(),
    [
      [1, 'error', 'KOMETA_ERR_FORBIDDEN'],
      [2, 'error', 'KOMETA_ERR_FORBIDDEN'],
      [3, 'subscribed', undefined],
      [4, 'error', 'KOMETA_ERR_FORBIDDEN'],
    ],
  );
  for (let i = 0; i < 5; i++) await publishBoth();
  await sse.waitFor((r) => r.text.includes(`public-${n}`), 5000, 'the SSE subscriber to get the allowed channel');
  await waitFor(
    () => ws.frames.some((f) => f.data === `public-${n}`),
    5000,
    'the WebSocket subscriber to get the allowed channel',
  );
  everything.push(sse.text, JSON.stringify(ws.frames));
  sse.close();
  ws.ws.close();

  // A WebSocket from a cross-site page is refused at the handshake.
  await assert.rejects(
    openWs(`ws://127.0.0.1:${hub.port}/ws`, { ...bearer, Origin: 'https://evil.example' }),
    /upgrade refused: 403/,
  );
  await assert.rejects(
    openWs(`ws://127.0.0.1:${hub.port}/ws`, { Authorization: 'Bearer forged.token.value' }),
    /upgrade refused: 401/,
  );

  for (const text of everything) assert.ok(!text.includes('SECRET'), `a secret message leaked: ${text.slice(0, 300)}`);
  assert.ok(!everything.join('').includes('forged'));
  assert.equal(refusals.length, httpAttempts.length);
});

test('a WebSocket whose token expires is closed with 4401', async (t) => {
  const hub = await startHub({ http: { access: await AccessPolicy.create({ tokens: { secret: SECRET } }) } });
  t.after(() => hub.close());
  const token = await sign({ subscribe: ['c'] }, Math.floor(Date.now() / 1000) + 2);
  const ws = await openWs(`ws://127.0.0.1:${hub.port}/ws?token=${token}`);
  ws.ws.send(JSON.stringify({ type: 'subscribe', channel: 'c' }));
  await waitFor(() => ws.frames.some((f) => f.type === 'subscribed'));
  assert.equal(await ws.closed, 4401);
  await waitFor(() => hub.hub.subscriberCount('c') === 0);
});

test('a ticket works for a WebSocket too, and sets the session cookie on the handshake', async (t) => {
  const hub = await startHub({ http: { access: await AccessPolicy.create({ publisherKey: 'k' }) } });
  t.after(() => hub.close());
  const { ticket } = (
    await httpRequest(`${hub.url}/tickets`, {
      method: 'POST',
      headers: { Authorization: 'Bearer k' },
      body: '{"subscribe":["room.1"]}',
    })
  ).json<{ ticket: string }>();
  const cookie = await new Promise<string>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/ws?ticket=${ticket}`);
    ws.on('upgrade', (res) => resolve(String(res.headers['set-cookie'])));
    ws.on('error', reject);
    ws.on('open', () => ws.close());
  });
  assert.match(cookie, /^kometa_session=[A-Za-z0-9_.-]+; /);
  await assert.rejects(openWs(`ws://127.0.0.1:${hub.port}/ws?ticket=${ticket}`), /upgrade refused: 401/);
  const again = await openWs(`ws://127.0.0.1:${hub.port}/ws?ticket=${ticket}`, { Cookie: cookie.split(';')[0]! });
  again.ws.send(JSON.stringify({ type: 'subscribe', channel: 'room.1', ref: 1 }));
  again.ws.send(JSON.stringify({ type: 'subscribe', channel: 'room.2', ref: 2 }));
  await waitFor(() => again.frames.length >= 2);
  assert.deepEqual(again.frames.map((f) => [f.ref, f.type]).sort(), [
    [1, 'subscribed'],
    [2, 'error'],
  ]);
  again.ws.close();
});
