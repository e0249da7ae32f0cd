import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AccessPolicy } from '../../src/auth/access.js';
import { httpRequest, publish, startHub } from '../helpers/hub.js';
import { SECRET, postJson, token } from './helpers.js';

interface Page {
  channel: string;
  epoch: string;
  messages: { id: string; event?: string; data: string; time: string }[];
  next?: string;
  gap?: { reason: string };
}

async function fill(base: string, channel: string, count: number): Promise<void> {
  for (let from = 0; from < count; from += 1000) {
    const items = Array.from({ length: Math.min(1000, count - from) }, (_, i) => ({
      channel,
      data: String(from + i + 1),
      ...((from + i) % 2 === 0 ? { event: 'odd' } : {}),
    }));
    const res = await postJson(`${base}/pub`, items);
    assert.equal(res.json<{ published: number }>().published, items.length);
  }
}

async function pages(base: string, first: string): Promise<Page[]> {
  const out: Page[] = [];
  let path: string | undefined = first;
  while (path !== undefined) {
    const res = await httpRequest(`${base}${path}`);
    assert.equal(res.status, 200, res.body);
    const page = res.json<Page>();
    out.push(page);
    path = page.next;
    assert.ok(out.length < 100, 'paging ends');
  }
  return out;
}

test('paging through 2,500 messages with limit=100 returns each exactly once, in order, both ways', async (t) => {
  const hub = await startHub({ memory: { history: { maxMessages: 5000 } }, http: { publishRate: 0 } });
  t.after(() => hub.close());
  await fill(hub.url, 'feed', 2500);
  const expected = Array.from({ length: 2500 }, (_, i) => String(i + 1));

  // Default: the newest 100, oldest first; `next` goes back in time.
  const back = await pages(hub.url, '/channels/feed/history?limit=100');
  assert.equal(back.length, 25);
  assert.deepEqual(
    back[0]!.messages.map((m) => m.data),
    expected.slice(2400),
  );
  assert.deepEqual(
    back.reverse().flatMap((p) => p.messages.map((m) => m.data)),
    expected,
  );

  // Forward from the start of the epoch with since.
  const epoch = back[0]!.epoch;
  const forward = await pages(hub.url, `/channels/feed/history?limit=100&since=feed~${epoch}~0`);
  assert.equal(forward.length, 25);
  assert.deepEqual(
    forward.flatMap((p) => p.messages.map((m) => m.data)),
    expected,
  );
  assert.equal(forward.at(-1)!.next, undefined);

  // reverse=true: newest first, all the way down.
  const reverse = await pages(hub.url, '/channels/feed/history?limit=100&reverse=true');
  assert.deepEqual(
    reverse.flatMap((p) => p.messages.map((m) => m.data)),
    [...expected].reverse(),
  );

  const [message] = (
    await pages(hub.url, `/channels/feed/history?limit=1&since=feed~${epoch}~0&before=feed~${epoch}~2`)
  )[0]!.messages;
  assert.deepEqual(Object.keys(message!), ['id', 'event', 'data', 'time']);
  assert.equal(message!.event, 'odd');
  assert.equal(message!.id, `feed~${epoch}~1`);
  assert.ok(Math.abs(Date.parse(message!.time) - Date.now()) < 60_000);
});

test('history answers bad queries with 400, an empty channel with no messages, and a lost since with a ' +
  'gap', async (t) => {
  const hub = await startHub({ memory: { history: { maxMessages: 3 } } });
  t.after(() => hub.close());
  for (const query of ['limit=0', 'limit=1001', 'limit=x', 'reverse=maybe', 'since=other~abc~1', 'since=nonsense']) {
    const res = await httpRequest(`${hub.url}/channels/h/history?${query}`);
    assert.equal(res.status, 400, query);
    assert.match(res.json<{ code: string }>().code, /KOMETA_ERR_(HISTORY_PARAM|CURSOR)/);
  }
  assert.deepEqual((await httpRequest(`${hub.url}/channels/h/history`)).json<Page>().messages, []);
  for (let i = 1; i <= 5; i++) await publish(hub.url, 'h', String(i));
  const epoch = (await httpRequest(`${hub.url}/channels/h/history`)).json<Page>().epoch;
  const page = (await httpRequest(`${hub.url}/channels/h/history?since=h~${epoch}~1`)).json<
    Page & { gap: { reason: string; missed: { from: number; to: number } } }
  >();
  assert.deepEqual(page.gap, { reason: 'history-truncated', epoch, missed: { from: 2, to: 2 } });
  assert.deepEqual(
    page.messages.map((m) => m.data),
    ['3', '4', '5'],
  );
  const ahead = await httpRequest(`${hub.url}/channels/h/history?since=h~${epoch}~9`);
  assert.equal(ahead.json<{ code: string }>().code, 'KOMETA_ERR_CURSOR_AHEAD');
});

test("reading history needs the right to subscribe to the channel; publishing in a batch, the right to publish each " +
  "item's channel", async (t) => {
  const hub = await startHub({
    http: { access: await AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: 'pk' }) },
  });
  t.after(() => hub.close());
  await postJson(`${hub.url}/pub`, [{ channel: 'secret.1', data: 'x' }], { Authorization: 'Bearer pk' });
  const reader = await token({ subscribe: ['secret.*'] });
  const writer = await token({ publish: ['open.*'] });
  assert.equal((await httpRequest(`${hub.url}/channels/secret.1/history`)).status, 401);
  const forbidden = await httpRequest(`${hub.url}/channels/secret.1/history`, {
    headers: { Authorization: `Bearer ${writer}` },
  });
  assert.equal(forbidden.status, 403);
  assert.equal(forbidden.json<{ code: string }>().code, 'KOMETA_ERR_FORBIDDEN');
  const allowed = await httpRequest(`${hub.url}/channels/secret.1/history`, {
    headers: { Authorization: `Bearer ${reader}` },
  });
  assert.deepEqual(
    allowed.json<Page>().messages.map((m) => m.data),
    ['x'],
  );
  const batch = await postJson(
    `${hub.url}/pub`,
    [
      { channel: 'open.1', data: 'y' },
      { channel: 'secret.1', data: 'z' },
      { channels: ['open.2', 'secret.2'], data: 'w' },
    ],
    { Authorization: `Bearer ${writer}` },
  );
  const { results } = batch.json<{ results: Record<string, { code: string } | unknown>[] }>();
  assert.equal(results[0]!.error, undefined);
  assert.equal((results[1]!.error as { code: string }).code, 'KOMETA_ERR_FORBIDDEN');
  assert.equal(
    (results[2]!.error as { code: string }).code,
    'KOMETA_ERR_FORBIDDEN',
    'a broadcast item needs every channel',
  );
  const anonymous = await postJson(`${hub.url}/pub`, [{ channel: 'open.1', data: 'y' }]);
  assert.equal(
    anonymous.json<{ results: { error: { code: string } }[] }>().results[0]!.error.code,
    'KOMETA_ERR_UNAUTHORIZED',
  );
});

test('kometa serve (durable default): history reads page the same after a SIGKILL and a restart', async (t) => {
  const { startKometa } = await import('../helpers/redis.js');
  const { dataDirArgs } = await import('../helpers/data-dir.js');
  const args = [...dataDirArgs('history'), '--publish-rate', '0'];
  let node = await startKometa(args);
  t.after(() => node.kill());
  await fill(node.url, 'kept', 250);
  const before = (await pages(node.url, '/channels/kept/history?limit=100')).flatMap((p) => p.messages);
  await node.kill('SIGKILL');
  node = await startKometa(args);
  const after = (await pages(node.url, '/channels/kept/history?limit=100')).flatMap((p) => p.messages);
  assert.equal(after.length, 250);
  assert.deepEqual(after, before);
});
