import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { test } from 'node:test';
import { waitFor } from '../helpers/hub.js';
import { h2Session, startSecureHub } from '../helpers/tls.js';

const IDLE_MS = 400;

/** Whether and when the server sent GOAWAY on this session. */
function watchGoaway(session: ClientHttp2Session): { readonly at: number | undefined } {
  const seen: { at: number | undefined } = { at: undefined };
  session.on('goaway', () => (seen.at ??= Date.now()));
  return seen;
}

function get(session: ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
  const stream = session.request({ ':path': path, ...headers });
  stream.on('error', () => {});
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (piece: string) => (text += piece));
  return { stream, text: () => text };
}

test('an HTTP/2 session with no open stream for the keep-alive timeout is sent GOAWAY and closed', async (t) => {
  const secure = await startSecureHub(t, { keepAliveTimeoutMs: IDLE_MS });
  const session = h2Session(t, secure.url, secure.tls.cert);
  const goaway = watchGoaway(session);
  const health = get(session, '/healthz');
  await new Promise((resolve) => health.stream.once('close', resolve));
  const idleFrom = Date.now();
  await waitFor(() => goaway.at !== undefined, 10_000, 'GOAWAY on the idle session');
  assert.ok(goaway.at! - idleFrom >= IDLE_MS - 50, `not before the timeout (${goaway.at! - idleFrom} ms)`);
  await waitFor(() => session.closed || session.destroyed, 10_000, 'the session to close');
});

test('an HTTP/2 session holding a subscription stream is never idle; it is once the stream ends', async (t) => {
  const secure = await startSecureHub(t, { keepAliveTimeoutMs: IDLE_MS, heartbeatMs: 60_000 });
  const session = h2Session(t, secure.url, secure.tls.cert);
  const goaway = watchGoaway(session);
  const sse = get(session, '/sub/quiet', { accept: 'text/event-stream' });
  await waitFor(() => secure.hub.subscriberCount('quiet') === 1, 5000, 'the subscription');
  // Five times the timeout with nothing on the wire (no message, heartbeats a minute apart).
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS * 5));
  assert.equal(goaway.at, undefined, 'no GOAWAY while a subscription is open');
  await secure.hub.publish('quiet', 'still here');
  await waitFor(() => sse.text().includes('data: still here'), 5000, 'the message on the quiet stream');
  sse.stream.close();
  await waitFor(() => goaway.at !== undefined, 10_000, 'GOAWAY once the subscription ended');
});
