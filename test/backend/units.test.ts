import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RevocationList } from '../../src/auth/revocations.js';
import { ConnectionRegistry, type ConnectionEntry } from '../../src/http/connections.js';
import { parseBatch } from '../../src/http/batch.js';
import { fingerprint } from '../../src/core/idempotency.js';

test('a revocation refuses tokens issued up to it (and tokens without iat), until it lapses', () => {
  let now = 10_000;
  const list = new RevocationList(() => now);
  list.add({ user: 'u', at: 10_000, until: 20_000 });
  assert.equal(list.isRevoked('u', 9_000), true);
  assert.equal(list.isRevoked('u', 10_000), true);
  assert.equal(list.isRevoked('u', undefined), true);
  assert.equal(list.isRevoked('u', 11_000), false);
  assert.equal(list.isRevoked('v', 1), false);
  list.add({ user: 'u', at: 5_000, until: 15_000 });
  assert.equal(list.isRevoked('u', 9_500), true, 'an older order never shortens a newer one');
  now = 20_001;
  assert.equal(list.isRevoked('u', 1), false);
  assert.equal(list.size, 0);
});

test('the connection registry finds by user, by client, by both, and forgets closed connections', () => {
  const registry = new ConnectionRegistry();
  const ended: string[] = [];
  const entry = (name: string, user?: string, client?: string, channels: string[] = ['a']): ConnectionEntry => ({
    user,
    client,
    end: (channel) => (channel === undefined || channels.includes(channel)) && (ended.push(name), true),
  });
  const forgetOne = registry.add(entry('one', 'u1', 'c1'));
  registry.add(entry('two', 'u1', 'c2', ['b']));
  registry.add(entry('three', 'u2', 'c3'));
  registry.add(entry('anonymous'));
  assert.equal(registry.disconnect({ user: 'u1', client: 'c2' }), 1);
  assert.equal(registry.disconnect({ user: 'u1', channel: 'a' }), 1);
  forgetOne();
  assert.equal(registry.disconnect({ client: 'c1' }), 0);
  assert.equal(registry.disconnect({ user: 'nobody' }), 0);
  assert.deepEqual(ended, ['two', 'one']);
});

test('batch parsing: JSON arrays, NDJSON with a bad line, non-string data as JSON, and the item limit counting broadcasts', () => {
  const items = parseBatch(
    'application/x-ndjson',
    Buffer.from('{"channel":"a","data":{"x":1}}\nnot json\n\n{"channels":["b","b","c"],"data":"y"}\n'),
    10,
  );
  assert.equal(items.length, 3);
  assert.deepEqual(items[0], {
    ok: true,
    channels: ['a'],
    broadcast: false,
    data: '{"x":1}',
    event: undefined,
    key: undefined,
    exclude: undefined,
  });
  assert.equal(items[1]!.ok, false);
  assert.deepEqual(items[2]!.ok && items[2]!.channels, ['b', 'c']);
  assert.throws(
    () => parseBatch('application/json', Buffer.from(JSON.stringify([{ channels: ['a', 'b', 'c'], data: 'x' }])), 2),
    /at most 2 messages/,
  );
  assert.throws(() => parseBatch('text/plain', Buffer.from('[]'), 2), /JSON array/);
  assert.notEqual(
    fingerprint('one', 'a', undefined, 'x'),
    fingerprint('one', 'a', '', 'x'),
    'no event and an empty event differ',
  );
  assert.notEqual(
    fingerprint('one', 'ab', undefined, 'c'),
    fingerprint('one', 'a', undefined, 'bc'),
    'parts cannot run into each other',
  );
});
