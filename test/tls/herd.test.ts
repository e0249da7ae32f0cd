import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Admission, RetryHints } from '../../src/http/herd.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';

test('many SSE connections get different retry: hints, all within --retry × (1 ± --retry-jitter)', async (t) => {
  const hub = await startHub({ http: { retryMs: 2000, retryJitter: 0.5 } });
  t.after(() => hub.close());
  const hints: number[] = [];
  for (let i = 0; i < 40; i++) {
    const reader = await StreamReader.open(`${hub.url}/sub/herd`, { Accept: 'text/event-stream' });
    await reader.waitFor((r) => /^retry: \d+\n\n/.test(r.text), 5000, 'the retry hint');
    hints.push(Number(/^retry: (\d+)/.exec(reader.text)![1]));
    reader.close();
  }
  for (const hint of hints) assert.ok(hint >= 1000 && hint <= 3000, `${hint} within 1000–3000`);
  assert.ok(new Set(hints).size >= 20, `spread out: ${hints.length} connections, ${new Set(hints).size} values`);
  assert.ok(Math.max(...hints) - Math.min(...hints) >= 1000, 'the values cover much of the range');
});

test('with --retry-jitter 0 every connection gets --retry exactly; the drain says Retry-After: 1', async (t) => {
  const hub = await startHub({ http: { retryMs: 2000, retryJitter: 0 } });
  const reader = await StreamReader.open(`${hub.url}/sub/fixed`, { Accept: 'text/event-stream' });
  t.after(() => reader.close());
  await reader.waitFor((r) => r.text.startsWith('retry: 2000\n\n'), 5000, 'the fixed hint');
  const hints = new RetryHints(2000, 0);
  assert.equal(hints.retryAfterSeconds(), 1);
  await hub.close();
});

test('the drain answers Retry-After drawn from the retry range, varying between requests', () => {
  const hints = new RetryHints(4000, 0.5);
  const seen = new Set<number>();
  for (let i = 0; i < 200; i++) {
    const after = hints.retryAfterSeconds();
    assert.ok(after >= 2 && after <= 6, `${after} s within 2–6`);
    seen.add(after);
  }
  assert.ok(seen.size >= 4, `several values: ${[...seen].join(', ')}`);
});

test('a real drain: requests on open connections get 503 with Retry-After values that differ', async (t) => {
  const hub = await startHub({ http: { retryMs: 4000, retryJitter: 0.5, shutdownGraceMs: 2000 } });
  t.after(() => hub.close());
  const { Agent, request } = await import('node:http');
  // Keep-alive connections opened before the drain; the requests come after it began.
  const agent = new Agent({ keepAlive: true, maxSockets: 30 });
  t.after(() => agent.destroy());
  const get = () =>
    new Promise<{ status: number; retryAfter: string | undefined }>((resolve, reject) => {
      const req = request(`${hub.url}/healthz`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] }));
      });
      req.on('error', reject);
      req.end();
    });
  await Promise.all(Array.from({ length: 30 }, get));
  const closing = hub.server.close();
  const answers = await Promise.all(Array.from({ length: 30 }, get));
  await closing;
  const values = answers.filter((a) => a.status === 503).map((a) => Number(a.retryAfter));
  assert.ok(values.length >= 10, `most requests were answered 503: ${JSON.stringify(answers.slice(0, 3))}`);
  for (const value of values) assert.ok(value >= 2 && value <= 6, `Retry-After ${value} within 2–6`);
  assert.ok(new Set(values).size >= 2, `varied: ${values.join(',')}`);
});

test('past --admit-rate SSE gets a kometa-error and a spread-out retry, a stream 503; then it recovers', async (t) => {
  let now = 0;
  const hints = new RetryHints(2000, 0.5);
  const admission = new Admission(10, hints, () => now);
  for (let i = 0; i < 10; i++) assert.equal(admission.admit(), undefined, 'a burst of one second is taken');
  const refusals = Array.from({ length: 90 }, () => admission.admit()!);
  assert.ok(refusals.every((r) => r !== undefined));
  const spread = refusals.map((r) => r.retryMs);
  assert.ok(Math.max(...spread) > 5000, 'a backlog of 90 at 10/s is spread over seconds, not the 1–3 s range');
  assert.ok(Math.min(...spread) >= 1000);
  now += 500;
  assert.equal(admission.admit(), undefined, 'half a second later, five more places');

  const hub = await startHub({ http: { admitRate: 5, retryMs: 2000 } });
  t.after(() => hub.close());
  const readers: StreamReader[] = [];
  t.after(() => readers.forEach((r) => r.close()));
  let busy: StreamReader | undefined;
  for (let i = 0; i < 20 && busy === undefined; i++) {
    const reader = await StreamReader.open(`${hub.url}/sub/storm`, { Accept: 'text/event-stream' });
    readers.push(reader);
    await reader.waitFor((r) => r.text.includes('retry: '), 5000, 'an answer');
    if (reader.text.includes('KOMETA_ERR_BUSY')) busy = reader;
  }
  assert.ok(busy, 'refused past the rate');
  assert.equal(busy.status, 200, 'EventSource would give up on a 503: a 200 with an error event');
  assert.match(busy.text, /^retry: \d+\nevent: kometa-error\ndata: \{"code":"KOMETA_ERR_BUSY"/);
  await busy.waitFor((r) => r.ended, 5000, 'the refusal to end');
  const stream = await httpRequest(`${hub.url}/sub/storm?transport=stream`);
  assert.equal(stream.status, 503);
  assert.equal(stream.json<{ code: string }>().code, 'KOMETA_ERR_BUSY');
  assert.ok(Number(stream.headers['retry-after']) >= 1);
  const poll = await httpRequest(`${hub.url}/sub/storm?transport=poll&timeout=0`);
  assert.equal(poll.status, 200, 'long-polls are not counted');
  // The bucket refills: a subscribe goes through again.
  let admitted = false;
  for (let attempt = 0; attempt < 50 && !admitted; attempt++) {
    const later = await StreamReader.open(`${hub.url}/sub/storm`, { Accept: 'text/event-stream' });
    readers.push(later);
    await later.waitFor((r) => /\n\n/.test(r.text), 5000, 'an answer');
    admitted = !later.text.includes('KOMETA_ERR_BUSY');
    if (!admitted) await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(admitted, 'admitted again once the rate allows');
  await waitFor(() => hub.hub.subscriberCount('storm') > 5, 5000, 'the admitted one subscribed');
});
