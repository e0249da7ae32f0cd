import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { type Server, createServer } from 'node:http';
import { test } from 'node:test';
import { EventSource } from 'eventsource';
import { WebhookSender, type WebhookBody, signWebhook } from '../../src/http/webhooks.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { freePort } from '../helpers/redis.js';

const POLL_FOR_MS = 30_000;

test('long-poll churn: a client polling for 30 s (timeouts and answers) is one join and no leave', {
  timeout: 120_000,
}, async (t) => {
  // The default grace period (5 s).
  const hub = await startHub();
  const graceMs = hub.hub.presence!.options.graceMs;
  assert.equal(graceMs, 5000);
  t.after(() => hub.close());
  const events: string[] = [];
  for (const name of ['join', 'leave'] as const) hub.hub.on(name, (e) => events.push(`${e.event}:${e.member!.client}`));
  // Polls that time out (nothing published) and polls answered by a message, back to back, for 30 s.
  let since = '';
  let polls = 0;
  const publisher = setInterval(() => void httpRequest(`${hub.url}/pub/feed`, { method: 'POST', body: 'x' }), 300);
  t.after(() => clearInterval(publisher));
  const until = performance.now() + POLL_FOR_MS;
  while (performance.now() < until) {
    const res = await httpRequest(`${hub.url}/sub/feed?transport=poll&timeout=0.2&client=poller${since}`);
    assert.equal(res.status, 200);
    const cursor = res.json<{ cursor: string }>().cursor;
    since = `&since=${encodeURIComponent(cursor)}`;
    polls++;
  }
  clearInterval(publisher);
  assert.ok(polls >= 30, `${polls} polls`);
  assert.deepEqual(events, ['join:poller']);
  // Stopped polling: it leaves once the grace period is over.
  await waitFor(() => events.length === 2, graceMs + 15_000, 'the leave');
  assert.deepEqual(events, ['join:poller', 'leave:poller']);
});

/** A webhook receiver on a fixed port that the test can stop and start again. */
function receiverOn(port: number, got: WebhookBody[], signatures: boolean[]): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString();
      const expected = `sha256=${createHmac('sha256', 's3cret').update(raw).digest('hex')}`;
      signatures.push(req.headers['kometa-signature'] === expected);
      got.push(JSON.parse(raw) as WebhookBody);
      res.writeHead(200).end('ok');
    });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

const RECEIVER_DOWN_MS = 10_000;

test('webhook receiver down for 10 s, then up: every event arrives, in order per channel, with ids', {
  timeout: 120_000,
}, async (t) => {
  const hub = await startHub({ presence: { graceMs: 0 } });
  t.after(() => hub.close());
  const port = await freePort();
  const sender = new WebhookSender(hub.hub, {
    url: `http://127.0.0.1:${port}/hook`,
    secret: 's3cret',
    events: ['channel.occupied', 'channel.vacated', 'member.join', 'member.leave'],
    minBackoffMs: 250,
    maxBackoffMs: 2000,
  });
  t.after(() => sender.close());
  const downSince = performance.now();
  let emitted = 0;
  hub.hub.on('vacated', () => emitted++);
  // While nobody listens on the port: two channels fill and empty, twice each.
  for (const channel of ['one', 'two']) {
    for (const client of ['x', 'y']) {
      const source = new EventSource(`${hub.url}/sub/${channel}?client=${client}`);
      await new Promise<void>((resolve) => (source.onopen = () => resolve()));
      source.close();
      const before = emitted;
      await waitFor(() => emitted > before, 2000, 'the channel to empty');
    }
  }
  await new Promise((resolve) => setTimeout(resolve, RECEIVER_DOWN_MS - (performance.now() - downSince)));
  assert.ok(sender.counters.failures > 0, 'the POSTs failed while the receiver was down');
  assert.equal(sender.counters.sent, 0);
  const got: WebhookBody[] = [];
  const signatures: boolean[] = [];
  const server = await receiverOn(port, got, signatures);
  t.after(() => new Promise((resolve) => server.close(resolve)));
  await waitFor(() => sender.queued === 0 && got.length >= 16, 30_000, 'every event').catch((error: Error) => {
    throw new Error(`${error.message}: ${JSON.stringify(got.map((e) => e.event))}, ${sender.queued} queued`);
  });
  const unique = [...new Map(got.map((e) => [e.id, e])).values()];
  for (const channel of ['one', 'two']) {
    assert.deepEqual(
      unique
        .filter((e) => e.channel === channel)
        .map((e) => `${e.event}${e.client === undefined ? '' : `:${e.client}`}`),
      [
        'channel.occupied', 'member.join:x', 'member.leave:x', 'channel.vacated',
        'channel.occupied', 'member.join:y', 'member.leave:y', 'channel.vacated',
      ],
      channel,
    );
  }
  assert.ok(signatures.every(Boolean));
  assert.equal(sender.counters.dropped, 0);
  const sample = unique[0]!;
  assert.ok(!Number.isNaN(Date.parse(sample.time)));
  assert.equal(signWebhook('k', '{}'), `sha256=${createHmac('sha256', 'k').update('{}').digest('hex')}`);
});

test('a full webhook queue drops the newest event and counts it', async (t) => {
  const hub = await startHub({ presence: { graceMs: 0 } });
  t.after(() => hub.close());
  const port = await freePort();
  const dropped: WebhookBody[] = [];
  const sender = new WebhookSender(hub.hub, {
    url: `http://127.0.0.1:${port}/hook`,
    secret: '',
    events: ['channel.occupied', 'channel.vacated'],
    maxQueue: 2,
    minBackoffMs: 1000,
    onDrop: (event) => dropped.push(event),
  });
  t.after(() => sender.close());
  const source = new EventSource(`${hub.url}/sub/full?client=z`);
  await new Promise<void>((resolve) => (source.onopen = () => resolve()));
  source.close();
  await waitFor(() => sender.queued === 2, 2000, 'two queued');
  const again = new EventSource(`${hub.url}/sub/full?client=z`);
  await new Promise<void>((resolve) => (again.onopen = () => resolve()));
  again.close();
  await waitFor(() => sender.counters.dropped === 2, 2000, 'two dropped');
  assert.deepEqual(dropped.map((e) => e.event), ['channel.occupied', 'channel.vacated']);
});
