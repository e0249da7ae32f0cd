import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { AccessPolicy } from '../../src/auth/access.js';
import { KometaServer, KometaServerError } from '../../src/server/index.js';
import { httpRequest, startHub, waitFor } from '../helpers/hub.js';
import { SECRET } from './helpers.js';

const cli = resolve(import.meta.dirname, '../../src/cli/main.js');
const run = promisify(execFile);

async function protectedHub() {
  return startHub({
    http: { access: await AccessPolicy.create({ tokens: { secret: SECRET }, publisherKey: 'pk' }) },
    memory: { history: { maxMessages: 5000 } },
  });
}

test('kometa/server: publish, batch, broadcast, history, tickets and disconnect, with refusals as typed ' +
  'errors', async (t) => {
  const hub = await protectedHub();
  t.after(() => hub.close());
  const kometa = new KometaServer({ url: hub.url, publisherKey: 'pk' });

  const one = await kometa.publish('room', { text: 'hi' }, { event: 'chat' });
  assert.match(one.id, /^room~[^~]+~1$/);
  const batch = await kometa.batch([
    { channel: 'room', data: 'two' },
    { channel: 'bad name', data: 'x' },
  ]);
  assert.equal(batch.published, 1);
  assert.equal(batch.failed, 1);
  const broadcast = await kometa.broadcast(['a', 'b'], 'both');
  assert.deepEqual(
    broadcast.map((r) => ('id' in r ? r.channel : 'error')),
    ['a', 'b'],
  );

  const page = await kometa.history('room');
  assert.deepEqual(
    page.messages.map((m) => [m.event, m.data]),
    [
      ['chat', '{"text":"hi"}'],
      [undefined, 'two'],
    ],
  );
  for (let i = 0; i < 3; i++)
    await kometa.batch(Array.from({ length: 100 }, (_, k) => ({ channel: 'many', data: String(i * 100 + k) })));
  const all: string[] = [];
  for await (const message of kometa.historyAll('many', { limit: 40, reverse: true })) all.push(message.data);
  assert.deepEqual(
    all,
    Array.from({ length: 300 }, (_, k) => String(299 - k)),
  );

  await assert.rejects(
    kometa.publish('bad name', 'x'),
    (error: unknown) =>
      error instanceof KometaServerError &&
      error.code === 'KOMETA_ERR_CHANNEL_NAME' &&
      error.status === 400 &&
      !error.retryable,
  );
  await assert.rejects(
    new KometaServer({ url: hub.url }).publish('room', 'x'),
    (error: unknown) => error instanceof KometaServerError && error.code === 'KOMETA_ERR_UNAUTHORIZED',
  );
  await assert.rejects(
    new KometaServer({ url: 'http://127.0.0.1:1' }).publish('room', 'x'),
    (error: unknown) => error instanceof KometaServerError && error.code === 'KOMETA_CLIENT_NETWORK' && error.retryable,
  );

  // A ticket minted for a user: the browser's session is that user, and disconnect finds it.
  const { ticket } = await kometa.mintTicket({ subscribe: ['room'], user: 'alice' });
  const poll = httpRequest(`${hub.url}/sub/room?transport=poll&timeout=10&ticket=${ticket}`);
  await waitFor(() => hub.hub.subscriberCount('room') === 1);
  assert.deepEqual(await kometa.disconnect({ user: 'alice', reason: 'bye' }), { disconnected: 1, scope: 'cluster' });
  assert.equal((await poll).status, 410);
});

test('kometa/server publishOnce retries through a lost answer and still publishes once', async (t) => {
  const hub = await protectedHub();
  t.after(() => hub.close());
  let calls = 0;
  // The first attempt reaches the hub, then its answer is "lost".
  const flaky: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    if (++calls === 1) throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNRESET' } });
    return response;
  };
  const kometa = new KometaServer({ url: hub.url, publisherKey: 'pk', fetch: flaky, retry: { baseMs: 10 } });
  const result = await kometa.publishOnce('jobs', 'once');
  assert.equal(calls, 2);
  assert.equal(result.replayed, true);
  const page = await new KometaServer({ url: hub.url, publisherKey: 'pk' }).history('jobs');
  assert.deepEqual(
    page.messages.map((m) => m.id),
    [result.id],
  );
});

test('kometa publish --batch <file> and --idempotency-key', async (t) => {
  const hub = await startHub();
  t.after(() => hub.close());
  const dir = mkdtempSync(join(tmpdir(), 'kometa-batch-'));
  const file = join(dir, 'items.ndjson');
  writeFileSync(
    file,
    '{"channel":"a","data":"1"}\n{"channels":["b","c"],"data":"2"}\n{"channel":"bad name","data":"3"}\n',
  );
  const failed = await run(process.execPath, [cli, 'publish', '--batch', file, '--url', hub.url]).then(
    () => undefined,
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  assert.ok(failed !== undefined);
  assert.equal(failed.code, 1, 'an item failed');
  const lines = failed.stdout.trim().split('\n');
  assert.match(lines[0]!, /^1\ta~[^~]+~1$/);
  assert.match(lines[1]!, /^2\tb~[^~]+~1 {2}c~[^~]+~1$/);
  assert.match(lines[2]!, /^3\tbad name: KOMETA_ERR_CHANNEL_NAME/);
  assert.match(failed.stderr, /3 published, 1 failed/);
  writeFileSync(join(dir, 'ok.json'), '[{"channel":"a","data":"4"}]');
  assert.match(
    (await run(process.execPath, [cli, 'publish', '--batch', join(dir, 'ok.json'), '--url', hub.url])).stdout,
    /^1\ta~[^~]+~2\n$/,
  );

  const first = await run(process.execPath, [cli, 'publish', 'd', 'x', '--idempotency-key', 'cli-1', '--url', hub.url]);
  const again = await run(process.execPath, [cli, 'publish', 'd', 'x', '--idempotency-key', 'cli-1', '--url', hub.url]);
  assert.equal(first.stdout.split(' ')[0], again.stdout.split(' ')[0]);
  assert.match(again.stdout, /a replay: nothing new was published/);
  assert.equal((await hub.hub.channelInfo('d')).headSeq, 1);
});
