import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertChannelName, assertEventName, isValidChannelName } from '../../src/core/channel-name.js';
import { formatCursor, formatId, parseCursor } from '../../src/core/cursor.js';
import { KometaError } from '../../src/core/errors.js';

test('a message id is a one-entry cursor for its channel', () => {
  const id = formatId('room.42', 'k3f9a2bc', 17);
  assert.equal(id, 'room.42~k3f9a2bc~17');
  assert.deepEqual([...parseCursor(id)], [['room.42', { epoch: 'k3f9a2bc', seq: 17 }]]);
});

test('a cursor over several channels round-trips through its wire form', () => {
  const cursor = new Map([
    ['a', { epoch: 'e1', seq: 0 }],
    ['b:c', { epoch: 'E2x', seq: 9007199254740991 }],
  ]);
  assert.deepEqual(parseCursor(formatCursor(cursor)), cursor);
});

test('the empty string is the empty cursor', () => {
  assert.equal(parseCursor('').size, 0);
});

for (const [label, text] of [
  ['missing parts', 'room~abc'],
  ['too many parts', 'room~abc~1~2'],
  ['a negative sequence', 'room~abc~-1'],
  ['a sequence with a leading zero', 'room~abc~01'],
  ['a sequence past 2^53', 'room~abc~99999999999999999'],
  ['a non-numeric sequence', 'room~abc~one'],
  ['an epoch with punctuation', 'room~a.b~1'],
  ['an empty epoch', 'room~~1'],
  ['an invalid channel', '../etc~abc~1'],
  ['a channel twice', 'a~e~1,a~e~2'],
  ['a trailing comma', 'a~e~1,'],
  ['a newline', 'a~e~1\n'],
  ['unicode', 'ä~e~1'],
] as const) {
  test(`a cursor with ${label} is rejected as KOMETA_ERR_CURSOR`, () => {
    assert.throws(
      () => parseCursor(text),
      (error: unknown) => error instanceof KometaError && error.code === 'KOMETA_ERR_CURSOR' && error.status === 400,
    );
  });
}

test('a cursor with more entries than allowed is rejected', () => {
  const text = Array.from({ length: 5 }, (_, i) => `c${i}~e~1`).join(',');
  assert.equal(parseCursor(text, 5).size, 5);
  assert.throws(() => parseCursor(text, 4), /more than 4 entries/);
});

test('an overlong cursor is rejected before it is split', () => {
  assert.throws(() => parseCursor('a'.repeat(20_000)), /too long/);
});

test('channel names follow one documented rule', () => {
  for (const good of ['a', 'room.42', 'user:7@chat', '_x', 'A-b_c.d:e@f', 'x'.repeat(128)]) {
    assert.ok(isValidChannelName(good), good);
  }
  for (const bad of [
    '',
    '.',
    '..',
    '.hidden',
    '-x',
    'a/b',
    'a b',
    'a~b',
    'a,b',
    'a*',
    'ä',
    'a\u0000',
    'x'.repeat(129),
    '%2e',
  ]) {
    assert.ok(!isValidChannelName(bad), JSON.stringify(bad));
  }
  assert.throws(
    () => assertChannelName('a\nb'),
    (e: unknown) => e instanceof KometaError && e.code === 'KOMETA_ERR_CHANNEL_NAME',
  );
});

test('rejected names are echoed back without control characters', () => {
  try {
    assertChannelName('bad\u0001name');
    assert.fail('should throw');
  } catch (error) {
    assert.ok(error instanceof KometaError);
    assert.equal(error.extra?.channel, 'bad\\u0001name');
  }
});

test('event names cannot carry line breaks into SSE framing', () => {
  assert.equal(assertEventName('chat.message'), 'chat.message');
  assert.throws(
    () => assertEventName('x\ndata: injected'),
    (e: unknown) => e instanceof KometaError && e.code === 'KOMETA_ERR_EVENT_NAME',
  );
  assert.throws(() => assertEventName(''), KometaError);
  for (const reserved of ['kometa-gap', 'kometa-shutdown', 'Kometa-Error']) {
    assert.throws(
      () => assertEventName(reserved),
      (e: unknown) => e instanceof KometaError && e.code === 'KOMETA_ERR_EVENT_NAME',
      reserved,
    );
  }
});
