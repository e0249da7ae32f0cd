import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compilePattern, compilePatterns } from '../../src/auth/patterns.js';
import { KometaError } from '../../src/core/errors.js';

function matches(pattern: string, channels: string[]): string[] {
  const match = compilePattern(pattern);
  return channels.filter((channel) => match(channel));
}

const CHANNELS = ['room', 'room.', 'room.42', 'room.42.x', 'rooms.1', 'roomx42', 'other.room.42', 'a-b:c@d_e.1'];

test('a pattern without * matches exactly that channel', () => {
  assert.deepEqual(matches('room.42', CHANNELS), ['room.42']);
  assert.deepEqual(matches('room', CHANNELS), ['room']);
});

test('* stands for one or more characters other than a dot', () => {
  assert.deepEqual(matches('room.*', CHANNELS), ['room.42']);
  assert.deepEqual(matches('*', CHANNELS), ['room', 'roomx42']);
  assert.deepEqual(matches('room*', CHANNELS), ['roomx42']);
  assert.deepEqual(matches('*.42', CHANNELS), ['room.42']);
});

test('** stands for one or more characters of any kind, dots included', () => {
  assert.deepEqual(matches('room.**', CHANNELS), ['room.42', 'room.42.x']);
  assert.deepEqual(matches('**', CHANNELS), CHANNELS);
  assert.deepEqual(matches('**.42', CHANNELS), ['room.42', 'other.room.42']);
});

test('a dot in a pattern is a dot, not any character, and the other allowed characters are literal', () => {
  assert.deepEqual(matches('room.42', ['roomx42', 'room.42']), ['room.42']);
  assert.deepEqual(matches('a-b:c@d_e.*', CHANNELS), ['a-b:c@d_e.1']);
  assert.deepEqual(matches('a-b:c@d_e.*', ['a-bxc@d_e.1', 'a-b:c@d_eX1']), []);
});

test('a pattern matches the whole channel name, not a part of it', () => {
  assert.deepEqual(matches('room.*', ['xroom.1', 'room.1x.y']), []);
  assert.deepEqual(matches('*.1', ['room.1', 'room.12', 'a.room.1']), ['room.1']);
});

test('invalid patterns are refused with KOMETA_ERR_PATTERN', () => {
  for (const pattern of ['', 'room 42', 'room/42', 'room.***', 'é', 'x'.repeat(129), 'room.(.*)', 'room$']) {
    assert.throws(
      () => compilePattern(pattern),
      (error: unknown) => error instanceof KometaError && error.code === 'KOMETA_ERR_PATTERN',
      JSON.stringify(pattern),
    );
  }
  assert.doesNotThrow(() => compilePattern('x'.repeat(128)));
});

test('a list of patterns matches when any does, and an empty list matches nothing', () => {
  const none = compilePatterns([]);
  assert.equal(none('room.42'), false);
  const one = compilePatterns(['room.*']);
  assert.equal(one('room.42'), true);
  assert.equal(one('chat.1'), false);
  const several = compilePatterns(['room.*', 'chat.**', 'news']);
  assert.deepEqual(
    ['room.1', 'room.1.x', 'chat.a.b', 'news', 'news.1'].filter((channel) => several(channel)),
    ['room.1', 'chat.a.b', 'news'],
  );
  assert.throws(() => compilePatterns(['room.*', 'bad pattern']), KometaError);
});
