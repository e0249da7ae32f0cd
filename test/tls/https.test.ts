import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import type { ClientHttp2Session, ClientHttp2Stream } from 'node:http2';
import { test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { AccessPolicy } from '../../src/auth/access.js';
import { waitFor } from '../helpers/hub.js';
import { h2Session, startSecureHub } from '../helpers/tls.js';

/** Run curl, collecting its output, until it exits by itself. */
function curl(args: string[]): { child: ChildProcess; output: () => string; done: Promise<number | null> } {
  const child = spawn('curl', ['-sS', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, done };
}

interface H2Reply {
  readonly status: number;
  readonly headers: Record<string, unknown>;
  text: string;
  ended: boolean;
  readonly stream: ClientHttp2Stream;
}

/** One request on an HTTP/2 session; the body accumulates as it arrives. */
function h2Request(
  session: ClientHttp2Session,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': init.method ?? 'GET', ':path': path, ...init.headers });
    stream.on('error', reject);
    stream.on('response', (headers) => {
      const reply: H2Reply = { status: Number(headers[':status']), headers, text: '', ended: false, stream };
      stream.setEncoding('utf8');
      stream.on('data', (piece: string) => (reply.text += piece));
      stream.on('close', () => (reply.ended = true));
      resolve(reply);
    });
    stream.end(init.body);
  });
}

async function h2Body(session: ClientHttp2Session, path: string, init: Parameters<typeof h2Request>[2] = {}) {
  const reply = await h2Request(session, path, init);
  await waitFor(() => reply.ended, 5000, `the end of ${path}`);
  return reply;
}

test('curl --http2 and --http1.1 on the TLS port both subscribe (SSE) and publish; http_version: 2, 1.1', async (t) => {
  const secure = await startSecureHub(t);
  const ca = ['--cacert', secure.tls.certPath];
  const subscribe = (flag: string) =>
    curl([...ca, flag, '-N', '-w', '\nversion=%{http_version}\n', `${secure.url}/sub/both`]);
  const overH2 = subscribe('--http2');
  const overH1 = subscribe('--http1.1');
  t.after(() => {
    overH2.child.kill();
    overH1.child.kill();
  });
  await waitFor(() => secure.hub.subscriberCount('both') === 2, 10_000, 'both curl subscribers');
  for (const flag of ['--http2', '--http1.1']) {
    const pub = curl([
      ...ca,
      flag,
      '-w', '\nversion=%{http_version}', '-d', `sent with ${flag}`, `${secure.url}/pub/both`,
    ]);
    assert.equal(await pub.done, 0, pub.output());
    assert.match(pub.output(), /"subscribers":2/);
    assert.match(pub.output(), new RegExp(`version=${flag === '--http2' ? '2' : '1\\.1'}$`));
  }
  for (const sub of [overH2, overH1]) {
    await waitFor(() => sub.output().includes('data: sent with --http1.1'), 5000, `messages; got ${sub.output()}`);
    assert.match(sub.output(), /^retry: \d+\n/);
    assert.match(sub.output(), /id: both~\w+~1\ndata: sent with --http2\n\n/);
    assert.match(sub.output(), /\n\nid: both~\w+~2\ndata: sent with --http1\.1\n/);
  }
  // A drain ends both streams with the shutdown event; curl then prints the version it spoke.
  await secure.close();
  assert.equal(await overH2.done, 0);
  assert.equal(await overH1.done, 0);
  assert.match(overH2.output(), /event: kometa-shutdown[\s\S]*version=2\n$/);
  assert.match(overH1.output(), /event: kometa-shutdown[\s\S]*version=1\.1\n$/);
});

test('over HTTP/2: NDJSON stream, long-poll, publish and tickets on one session, side by side', async (t) => {
  const patterns = { publicSubscribe: ['open.*'], publicPublish: ['open.*'] };
  const access = await AccessPolicy.create({ publisherKey: 'pk', ...patterns });
  const secure = await startSecureHub(t, { access });
  const session = h2Session(t, secure.url, secure.tls.cert);
  const stream = await h2Request(session, '/sub/open.a', { headers: { accept: 'application/x-ndjson' } });
  assert.equal(stream.status, 200);
  assert.match(String(stream.headers['content-type']), /^application\/x-ndjson/);
  assert.equal(stream.headers['connection'], undefined, 'no HTTP/1 connection header over HTTP/2');
  assert.equal(stream.headers['transfer-encoding'], undefined);
  const poll = h2Body(session, '/sub/open.a?transport=poll&timeout=10&since=');
  await waitFor(() => secure.hub.subscriberCount('open.a') === 2, 5000, 'stream and poll subscribed');
  const pub = await h2Body(session, '/pub/open.a', { method: 'POST', body: 'over h2' });
  assert.equal(pub.status, 201, pub.text);
  const polled = JSON.parse((await poll).text) as { messages: { data: string }[] };
  assert.deepEqual(polled.messages.map((m) => m.data), ['over h2']);
  await waitFor(() => stream.text.includes('"data":"over h2"'), 5000, 'the message on the NDJSON stream');
  const ticket = await h2Body(session, '/tickets', {
    method: 'POST',
    headers: { authorization: 'Bearer pk', 'content-type': 'application/json' },
    body: JSON.stringify({ subscribe: ['room.1'] }),
  });
  assert.equal(ticket.status, 201, ticket.text);
  const { ticket: id } = JSON.parse(ticket.text) as { ticket: string };
  const sse = await h2Request(session, `/sub/room.1?ticket=${encodeURIComponent(id)}`, {
    headers: { accept: 'text/event-stream' },
  });
  assert.equal(sse.status, 200);
  assert.ok(sse.headers['set-cookie'], 'the ticket became a session cookie');
  const refused = await h2Body(session, '/pub/room.1', { method: 'POST', body: 'x' });
  assert.equal(refused.status, 401);
  assert.equal(JSON.parse(refused.text).code, 'KOMETA_ERR_UNAUTHORIZED');
  assert.equal(stream.ended, false, 'an error on one stream leaves the others alone');
});

test('over HTTP/2 a subscriber that stops reading is closed as a slow consumer; its session goes on', async (t) => {
  const secure = await startSecureHub(t, { maxQueueBytes: 64 * 1024 });
  const session = h2Session(t, secure.url, secure.tls.cert);
  const slow = await h2Request(session, '/sub/slow', { headers: { accept: 'text/event-stream' } });
  slow.stream.pause();
  await waitFor(() => secure.hub.subscriberCount('slow') === 1, 5000, 'the subscription');
  const big = 'x'.repeat(16 * 1024);
  // The session's and stream's flow-control windows (64 KiB by default) fill first; then the server's queue.
  for (let i = 0; i < 40 && secure.hub.subscriberCount('slow') > 0; i++) {
    const pub = await h2Body(session, '/pub/slow', { method: 'POST', body: big });
    assert.equal(pub.status, 201);
  }
  await waitFor(() => secure.hub.subscriberCount('slow') === 0, 5000, 'the slow subscriber to be dropped');
  slow.stream.resume();
  await waitFor(() => slow.ended, 10_000, 'the slow stream to end');
  assert.match(slow.text, /KOMETA_ERR_SLOW_CONSUMER/, 'told why, in-band');
  const health = await h2Body(session, '/healthz');
  assert.equal(health.status, 200, 'the same HTTP/2 connection still answers');
  assert.equal(session.closed, false);
});

test('the ws client connects over the TLS port (HTTP/1.1 upgrade), receives what is published over h2', async (t) => {
  const secure = await startSecureHub(t);
  const ws = new WebSocket(`wss://127.0.0.1:${secure.port}/ws`, { ca: secure.tls.cert });
  t.after(() => ws.terminate());
  const frames: { type: string; data?: string }[] = [];
  ws.on('message', (raw: Buffer) => frames.push(JSON.parse(raw.toString()) as { type: string; data?: string }));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ type: 'subscribe', channel: 'ws.tls' }));
  await waitFor(() => frames.some((f) => f.type === 'subscribed'), 5000, 'subscribed');
  const session = h2Session(t, secure.url, secure.tls.cert);
  const pub = await h2Body(session, '/pub/ws.tls', { method: 'POST', body: 'to the socket' });
  assert.equal(pub.status, 201);
  await waitFor(() => frames.some((f) => f.type === 'message' && f.data === 'to the socket'), 5000, 'the message');
});

test('a drain over HTTP/2 ends subscriptions with a jittered retry hint, answers 503, then closes', async (t) => {
  const secure = await startSecureHub(t, { retryMs: 3000, retryJitter: 0.5 });
  const session = h2Session(t, secure.url, secure.tls.cert);
  const sse = await h2Request(session, '/sub/drain', { headers: { accept: 'text/event-stream' } });
  await waitFor(() => secure.hub.subscriberCount('drain') === 1, 5000, 'subscribed');
  const closing = secure.close();
  const late = await h2Body(session, '/pub/drain', { method: 'POST', body: 'late' });
  assert.equal(late.status, 503);
  assert.equal(JSON.parse(late.text).code, 'KOMETA_ERR_DRAINING');
  const retryAfter = Number(late.headers['retry-after']);
  assert.ok(retryAfter >= 1 && retryAfter <= 5, `Retry-After ${retryAfter} within the hint range, in whole seconds`);
  await waitFor(() => sse.ended, 5000, 'the stream to end');
  const hint = /retry: (\d+)\nevent: kometa-shutdown/.exec(sse.text);
  assert.ok(hint, sse.text);
  assert.ok(Number(hint[1]) >= 1500 && Number(hint[1]) <= 4500, `hint ${hint[1]} within 3000 × (1 ± 0.5)`);
  await closing;
  await waitFor(() => session.destroyed || session.closed, 5000, 'the server to wind the session down');
});

test('over TLS, a connection past --max-connections is told 429 in its protocol and closed', async (t) => {
  // One connection plus the reserve kept for publishers (16) are taken; the 18th is refused.
  const secure = await startSecureHub(t, { maxConnections: 1 });
  const sessions = [];
  for (let i = 0; i < 17; i++) {
    const session = h2Session(t, secure.url, secure.tls.cert);
    const health = await h2Body(session, '/healthz');
    assert.equal(health.status, 200);
    sessions.push(session);
  }
  const refused = h2Session(t, secure.url, secure.tls.cert);
  const answer = await h2Body(refused, '/healthz');
  assert.equal(answer.status, 429);
  assert.equal(JSON.parse(answer.text).code, 'KOMETA_ERR_TOO_MANY_CONNECTIONS');
  await waitFor(() => refused.closed || refused.destroyed, 5000, 'the refused session to be closed');
  const h1 = { host: '127.0.0.1', port: secure.port, ca: secure.tls.cert, ALPNProtocols: ['http/1.1'] };
  const overH1 = tlsConnect(h1);
  let raw = '';
  overH1.setEncoding('utf8');
  overH1.on('data', (piece: string) => (raw += piece));
  overH1.on('error', () => {});
  t.after(() => overH1.destroy());
  await waitFor(() => raw.includes('KOMETA_ERR_TOO_MANY_CONNECTIONS'), 5000, 'the HTTP/1.1 refusal');
  assert.match(raw, /^HTTP\/1\.1 429 /);
  const still = await h2Body(sessions[0]!, '/healthz');
  assert.equal(still.status, 200, 'connections taken before are not disturbed');
});
