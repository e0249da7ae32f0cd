import assert from 'node:assert/strict';
import { Agent, request } from 'node:http';
import { test } from 'node:test';
import WebSocket from 'ws';
import { startHub } from '../helpers/hub.js';
import { StreamReader, parseSse } from '../helpers/streams.js';
import { openSocket } from '../ws/helpers.js';

/*
 * Shutdown under load: many publishers in flight on keep-alive connections,
 * many subscribers. Every publish that got a 201 reaches every subscriber
 * that was connected when it was accepted; every publish the server read
 * gets an answer (201 or 503), none a reset.
 */
const PUBLISHERS = 12;
const STREAMS = 8;
const SSE = 6;
const SOCKETS = 6;

type Outcome = { status: number; id?: string } | { error: string };

function publishOn(agent: Agent, port: number, body: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/pub/drain.room', method: 'POST', agent, headers: { 'Content-Type': 'text/plain' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve(res.statusCode === 201 ? { status: 201, id: (JSON.parse(text) as { id: string }).id } : { status: res.statusCode ?? 0 }));
      res.on('error', (error) => resolve({ error: String(error) }));
    });
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? String(error) }));
    req.end(body);
  });
}

test('a drain under load delivers every accepted publish and answers every publish it read', async () => {
  const hub = await startHub({ http: { publishRate: 0, shutdownGraceMs: 3000 } });
  let read = 0;
  let closed: Promise<void> | undefined;
  hub.server.server.prependListener('request', (req) => {
    if (!req.url?.startsWith('/pub/')) return;
    read++;
    // Drain from inside an I/O callback, as a signal arrives: publishes read
    // in this same turn of the event loop are accepted but not yet fanned out.
    if (read === 300) closed = hub.server.close();
  });
  const streams = await Promise.all(Array.from({ length: STREAMS }, () => StreamReader.open(`${hub.url}/sub/drain.room?transport=stream`)));
  const sses = await Promise.all(Array.from({ length: SSE }, () => StreamReader.open(`${hub.url}/sub/drain.room`)));
  const sockets = await Promise.all(Array.from({ length: SOCKETS }, () => openSocket(hub.url)));
  for (const socket of sockets) socket.send({ type: 'subscribe', channel: 'drain.room' });
  await Promise.all(sockets.map((s) => s.next('subscribed')));
  while (hub.hub.subscriberCount('drain.room') < STREAMS + SSE + SOCKETS) await new Promise((r) => setTimeout(r, 5));

  const outcomes: Outcome[] = [];
  let stop = false;
  const publishers = Array.from({ length: PUBLISHERS }, async (_, p) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let n = 0; !stop; n++) {
      const outcome = await publishOn(agent, hub.port, `p${p}-${n}`);
      outcomes.push(outcome);
      if (!('status' in outcome) || outcome.status !== 201) break;
    }
    agent.destroy();
  });
  await Promise.all(publishers);
  stop = true;
  await closed;

  const accepted = outcomes.flatMap((o) => ('status' in o && o.status === 201 ? [o.id!] : []));
  const refused = outcomes.filter((o) => 'status' in o && o.status !== 201);
  const errors = outcomes.flatMap((o) => ('error' in o ? [o.error] : []));
  assert.ok(accepted.length >= 250, `accepted ${accepted.length}`);
  assert.ok(refused.every((o) => 'status' in o && o.status === 503), JSON.stringify(refused.slice(0, 3)));
  assert.equal(read, accepted.length + refused.length, `every publish read was answered (errors: ${JSON.stringify(errors.slice(0, 5))})`);

  await Promise.all([...streams, ...sses].map((s) => s.waitFor((r) => r.ended, 5000, 'the end of the stream')));
  const missing: string[] = [];
  const check = (name: string, got: Set<string>) => {
    const lost = accepted.filter((id) => !got.has(id));
    if (lost.length > 0) missing.push(`${name} missed ${lost.length}: ${lost.slice(-3).join(' ')}`);
  };
  streams.forEach((s, i) => check(`stream ${i}`, new Set(s.json<{ type: string; id?: string }>().filter((l) => l.type === 'message').map((l) => l.id!))));
  sses.forEach((s, i) => check(`sse ${i}`, new Set(parseSse(s.text).filter((e) => e.data !== undefined && e.event === undefined).map((e) => e.id!))));
  for (const [i, socket] of sockets.entries()) {
    await socket.closed;
    check(`ws ${i}`, new Set(socket.frames.filter((f) => f.type === 'message').map((f) => f.id as string)));
    assert.equal(socket.ws.readyState, WebSocket.CLOSED);
  }
  assert.deepEqual(missing, []);
  assert.deepEqual(errors.filter((e) => e !== 'ECONNREFUSED'), [], 'no publish got a reset or a hang-up');
  assert.ok(streams.every((s) => s.json<{ type: string }>().at(-1)?.type === 'shutdown'), 'streams end with the shutdown line, after the messages');
});
