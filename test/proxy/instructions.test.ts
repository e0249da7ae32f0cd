import assert from 'node:assert/strict';
import { test } from 'node:test';
import { KometaError } from '../../src/core/errors.js';
import { parseInstructions } from '../../src/proxy/instructions.js';

test('GRIP headers as GRIP libraries write them are read exactly', () => {
  const instructions = parseInstructions({
    'grip-hold': 'stream',
    'grip-channel': 'a; prev-id=1, b, c; prev-id="x,y"',
    'grip-keep-alive': '\\n\\x41\\t; format=cstring; timeout=20',
    'grip-link': '</next?after=3>; rel=next; timeout=30, </gone>; rel=gone',
    'grip-status': '304 Not Modified',
  });
  assert.deepEqual(instructions.hold?.channels, [
    { name: 'a', prevId: '1' },
    { name: 'b', prevId: undefined },
    { name: 'c', prevId: 'x,y' },
  ]);
  assert.deepEqual(instructions.hold?.keepAlive, { data: Buffer.from('\nA\t'), timeoutMs: 20_000, mode: 'idle' });
  assert.deepEqual(instructions.next, { url: '/next?after=3', timeoutMs: 30_000 });
  assert.deepEqual(instructions.status, { code: 304, reason: 'Not Modified' });
});

test("defaults are GRIP's: 55 s hold timeout, 55 s keep-alive, raw keep-alive data, 120 s next-link timeout", () => {
  const held = parseInstructions({ 'grip-hold': 'response', 'grip-channel': 'x' });
  assert.equal(held.hold?.timeoutMs, 55_000);
  const stream = parseInstructions({
    'grip-hold': 'stream',
    'grip-channel': 'x',
    'grip-keep-alive': '{}',
    'grip-link': '</n>; rel=next',
  });
  assert.deepEqual(stream.hold?.keepAlive, { data: Buffer.from('{}'), timeoutMs: 55_000, mode: 'idle' });
  assert.equal(stream.next?.timeoutMs, 120_000);
  assert.equal(
    parseInstructions({
      'grip-hold': 'stream',
      'grip-channel': 'x',
      'grip-keep-alive': 'eA==; format=base64; mode=interval',
    }).hold?.keepAlive?.mode,
    'interval',
  );
});

test('Kometa-Defer: seconds and a next URL; delays over the bound are cut to it', () => {
  assert.deepEqual(parseInstructions({ 'kometa-defer': '1.5; next="/stage/?n=1"' }).defer, {
    delayMs: 1500,
    url: '/stage/?n=1',
  });
  assert.deepEqual(parseInstructions({ 'kometa-defer': '0; next=/x' }).defer, { delayMs: 0, url: '/x' });
  assert.equal(parseInstructions({ 'kometa-defer': '86400; next="/later"' }).defer?.delayMs, 60_000);
});

test('anything ambiguous is refused with KOMETA_ERR_ORIGIN_INSTRUCTION, never guessed', () => {
  const bad: Record<string, string>[] = [
    { 'grip-hold': 'Response', 'grip-channel': 'x' },
    { 'grip-hold': 'stream' },
    { 'grip-hold': 'stream', 'grip-channel': 'a/b' },
    { 'grip-hold': 'response', 'grip-channel': 'x', 'grip-timeout': '-1' },
    { 'grip-hold': 'response', 'grip-channel': 'x', 'grip-timeout': '1.5' },
    { 'grip-hold': 'stream', 'grip-channel': 'x', 'grip-keep-alive': 'x; format=hex' },
    { 'grip-hold': 'stream', 'grip-channel': 'x', 'grip-keep-alive': 'x; mode=sometimes' },
    { 'grip-hold': 'stream', 'grip-channel': 'x; prev-id="unterminated' },
    { 'grip-link': '<>; rel=next' },
    { 'grip-link': '</a b>; rel=next' },
    { 'grip-status': 'teapot' },
    { 'kometa-defer': 'soon; next="/x"' },
    { 'kometa-defer': '1' },
    { 'kometa-defer': '1; next="/x"', 'grip-link': '</y>; rel=next' },
  ];
  for (const headers of bad) {
    assert.throws(
      () => parseInstructions(headers),
      (error: unknown) =>
        error instanceof KometaError && error.code === 'KOMETA_ERR_ORIGIN_INSTRUCTION' && error.status === 502,
      JSON.stringify(headers),
    );
  }
});
