import assert from 'node:assert/strict';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';
import { test } from 'node:test';
import WebSocket from 'ws';
import { AccessPolicy } from '../../src/auth/access.js';
import { waitFor } from '../helpers/hub.js';
import { h2Session, startSecureHub } from '../helpers/tls.js';
import { type TestSocket, trackSocket } from '../ws/helpers.js';

/*
 * RFC 8441 from the client's side: node's http2 client sends the extended
 * CONNECT, and a `ws` WebSocket runs on the stream it opens, the way ws's
 * server side runs on an upgraded socket (its internal `setSocket`; the
 * client side differs only in masking what it sends, RFC 6455 section 5.3).
 */

interface Connected {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The open WebSocket when the answer was 200. */
  readonly socket: TestSocket | undefined;
  /** The problem details otherwise. */
  readonly body: string;
}

const ClientSide = WebSocket as unknown as new (
  address: null,
  protocols: undefined,
  options: { autoPong: boolean; closeTimeout: number },
) => WebSocket & {
  _isServer: boolean;
  setSocket(stream: ClientHttp2Stream, head: Buffer, options: { maxPayload: number }): void;
};

async function connectSettings(session: ClientHttp2Session): Promise<void> {
  if (session.remoteSettings?.enableConnectProtocol !== undefined) return;
  await new Promise((resolve) => session.once('remoteSettings', resolve));
}

async function h2WebSocket(
  session: ClientHttp2Session,
  headers: Record<string, string> = {},
): Promise<Connected> {
  await connectSettings(session);
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': '/ws',
    'sec-websocket-version': '13',
    ...headers,
  });
  stream.on('error', () => {});
  const response = await new Promise<IncomingHttpHeaders>((resolve, reject) => {
    stream.once('response', resolve);
    stream.once('close', () => reject(new Error(`stream closed without a response (${stream.rstCode})`)));
  });
  const status = Number(response[':status']);
  if (status !== 200) {
    let body = '';
    stream.setEncoding('utf8');
    for await (const piece of stream) body += piece as string;
    return { status, headers: response, socket: undefined, body };
  }
  const ws = new ClientSide(null, undefined, { autoPong: true, closeTimeout: 30_000 });
  // The client masks its frames and expects unmasked ones (ws decides both from this flag).
  ws._isServer = false;
  const socket = trackSocket(ws);
  ws.setSocket(stream, Buffer.alloc(0), { maxPayload: 100 * 1024 * 1024 });
  return { status, headers: response, socket, body: '' };
}

function h2Publish(session: ClientHttp2Session, channel: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': `/pub/${channel}` });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.resume();
    req.end(body);
  });
}

test('RFC 8441: an extended CONNECT opens /ws on an HTTP/2 stream: subscribe, publish, 1001 on drain', async (t) => {
  const secure = await startSecureHub(t);
  const session = h2Session(t, secure.url, secure.tls.cert);
  await connectSettings(session);
  assert.equal(session.remoteSettings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL is announced');
  const connected = await h2WebSocket(session);
  assert.equal(connected.status, 200, connected.body);
  assert.equal(connected.headers['sec-websocket-accept'], undefined, 'no key/accept over HTTP/2 (RFC 8441 section 5)');
  const socket = connected.socket!;
  t.after(() => socket.close());
  socket.send({ type: 'subscribe', channel: 'over-h2', ref: 1 });
  assert.equal((await socket.next()).type, 'subscribed');
  assert.equal(secure.hub.subscriberCount('over-h2'), 1);
  // A publish on another stream of the same connection reaches the WebSocket stream.
  assert.equal(await h2Publish(session, 'over-h2', 'from POST'), 201);
  const message = await socket.next('message');
  assert.equal(message.data, 'from POST');
  socket.send({ type: 'publish', channel: 'over-h2', data: 'from the socket', ref: 2 });
  const published = await socket.next('published');
  assert.equal(published.ref, 2);
  assert.equal((await socket.next('message')).data, 'from the socket');
  socket.send({ type: 'ping', ref: 3 });
  assert.equal((await socket.next('pong')).ref, 3);
  await secure.close();
  assert.deepEqual(await socket.closed, { code: 1001, reason: 'KOMETA_ERR_DRAINING' });
});

test('over HTTP/2 bad extended CONNECTs get problem details and leave the session usable', async (t) => {
  const secure = await startSecureHub(t);
  const session = h2Session(t, secure.url, secure.tls.cert);
  const cases: [Record<string, string>, number, string][] = [
    [{ ':protocol': 'chat' }, 400, 'KOMETA_ERR_BAD_REQUEST'],
    [{ ':path': '/elsewhere' }, 404, 'KOMETA_ERR_NOT_FOUND'],
    [{ 'sec-websocket-version': '8' }, 400, 'KOMETA_ERR_BAD_REQUEST'],
  ];
  for (const [headers, status, code] of cases) {
    const refused = await h2WebSocket(session, headers);
    assert.equal(refused.status, status, JSON.stringify(headers));
    assert.match(String(refused.headers['content-type']), /^application\/problem\+json/);
    assert.equal((JSON.parse(refused.body) as { code: string }).code, code);
  }
  // A CONNECT without :protocol asks for a tunnel.
  const tunnel = session.request({ ':method': 'CONNECT', ':authority': 'example.com:443' });
  tunnel.on('error', () => {});
  const tunnelStatus = await new Promise((resolve) => tunnel.once('response', (h) => resolve(h[':status'])));
  assert.equal(tunnelStatus, 405);
  tunnel.close();
  const good = await h2WebSocket(session);
  assert.equal(good.status, 200, 'the session still opens a WebSocket');
  await good.socket!.close();
});

test('over HTTP/2 the WebSocket has the same origin check and credentials as over HTTP/1.1', async (t) => {
  const access = await AccessPolicy.create({
    publisherKey: 'pk',
    publicSubscribe: ['open.*'],
    allowedOrigins: ['https://good.example'],
  });
  const secure = await startSecureHub(t, { access });
  const session = h2Session(t, secure.url, secure.tls.cert);
  const evil = await h2WebSocket(session, { origin: 'https://evil.example' });
  assert.equal(evil.status, 403);
  assert.equal((JSON.parse(evil.body) as { code: string }).code, 'KOMETA_ERR_ORIGIN');
  const anonymous = (await h2WebSocket(session, { origin: 'https://good.example' })).socket!;
  t.after(() => anonymous.close());
  anonymous.send({ type: 'subscribe', channel: 'open.room' });
  assert.equal((await anonymous.next()).type, 'subscribed');
  anonymous.send({ type: 'publish', channel: 'open.room', data: 'no' });
  assert.equal((await anonymous.next('error')).code, 'KOMETA_ERR_UNAUTHORIZED');
  const publisher = (await h2WebSocket(session, { origin: 'https://good.example', authorization: 'Bearer pk' }))
    .socket!;
  t.after(() => publisher.close());
  publisher.send({ type: 'publish', channel: 'open.room', data: 'yes' });
  assert.equal((await publisher.next('published')).type, 'published');
  assert.equal((await anonymous.next('message')).data, 'yes');
});

test('over HTTP/2 a WebSocket that stops reading is closed with 4503; its session goes on', async (t) => {
  const secure = await startSecureHub(t, { maxQueueBytes: 64 * 1024 });
  const session = h2Session(t, secure.url, secure.tls.cert);
  const slow = (await h2WebSocket(session)).socket!;
  t.after(() => slow.close());
  slow.send({ type: 'subscribe', channel: 'firehose' });
  await slow.next('subscribed');
  slow.ws.pause();
  const payload = 'x'.repeat(16 * 1024);
  let published = 0;
  // The stream's flow-control window shuts, its queue grows on the server, and the bound trips.
  while (secure.hub.subscriberCount('firehose') > 0 && published < 2000) {
    const batch = [];
    for (let i = 0; i < 10; i++) batch.push(secure.hub.publish('firehose', `${published + i}:${payload}`));
    published += 10;
    await Promise.all(batch);
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(secure.hub.subscriberCount('firehose'), 0, 'the slow consumer was dropped');
  slow.ws.resume();
  assert.deepEqual(await slow.closed, { code: 4503, reason: 'KOMETA_ERR_SLOW_CONSUMER' });
  const received = slow.frames.filter((f) => f.type === 'message');
  received.forEach((f, i) => assert.equal(String(f.data).split(':')[0], String(i)));
  assert.equal(await h2Publish(session, 'other', 'still here'), 201, 'the connection outlives the stream');
});

test('an HTTP/1.1 CONNECT on the TLS port is answered 405', async (t) => {
  const secure = await startSecureHub(t);
  const { connect } = await import('node:tls');
  const socket = connect({
    host: '127.0.0.1',
    port: secure.port,
    ca: secure.tls.cert,
    servername: 'localhost',
    ALPNProtocols: ['http/1.1'],
  });
  t.after(() => socket.destroy());
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (piece: string) => (text += piece));
  socket.on('error', () => {});
  socket.once('secureConnect', () => socket.write('CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n'));
  await waitFor(() => text.includes('}'), 5000, 'an answer to CONNECT');
  assert.match(text, /^HTTP\/1\.1 405 /);
  assert.match(text, /KOMETA_ERR_METHOD/);
});
