import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Grant } from '../../src/auth/grant.js';
import { RateLimiter } from '../../src/http/rate-limit.js';

/** A clock the test moves by hand (ms since 1970). */
function manualClock(start = 1_700_000_000_000) {
  const clock = { now: start, advance: (ms: number) => void (clock.now += ms) };
  return clock;
}

function grant(kind: Grant['kind'], subject: string): Grant {
  const all = () => true;
  return { subscribe: all, publish: all, tickets: false, admin: false, expiresAt: undefined, subject, kind };
}

test('a full bucket allows a burst, then answers how many seconds until the next token', () => {
  const clock = manualClock();
  const limiter = new RateLimiter(2, 4, () => clock.now);
  for (let i = 0; i < 4; i++) assert.equal(limiter.take('alice'), 0, `request ${i + 1} of the burst`);
  assert.equal(limiter.take('alice'), 1, 'at 2/s the next token is half a second away, rounded up to 1 s');
  const slow = new RateLimiter(0.25, 1, () => clock.now);
  assert.equal(slow.take('bob'), 0);
  assert.equal(slow.take('bob'), 4, 'at one per 4 s');
});

test('tokens come back with time at the sustained rate, never past the burst', () => {
  const clock = manualClock();
  const limiter = new RateLimiter(5, 10, () => clock.now);
  for (let i = 0; i < 10; i++) limiter.take('alice');
  assert.notEqual(limiter.take('alice'), 0);
  clock.advance(1000);
  for (let i = 0; i < 5; i++) assert.equal(limiter.take('alice'), 0, `token ${i + 1} of the second's 5`);
  assert.notEqual(limiter.take('alice'), 0, 'the sixth is over the rate');
  clock.advance(60_000);
  for (let i = 0; i < 10; i++) assert.equal(limiter.take('alice'), 0);
  assert.notEqual(limiter.take('alice'), 0, 'a minute idle still refills only up to the burst');
});

test('each key has its own bucket', () => {
  const clock = manualClock();
  const limiter = new RateLimiter(1, 1, () => clock.now);
  assert.equal(limiter.take('alice'), 0);
  assert.notEqual(limiter.take('alice'), 0);
  assert.equal(limiter.take('bob'), 0, 'bob is not charged for alice');
  assert.equal(limiter.size, 2);
});

test('a rate of 0 turns the limit off and keeps no state', () => {
  const limiter = new RateLimiter(0);
  for (let i = 0; i < 1000; i++) assert.equal(limiter.take('alice'), 0);
  assert.equal(limiter.size, 0);
});

test('the burst defaults to two seconds of the rate', () => {
  const clock = manualClock();
  const limiter = new RateLimiter(3, undefined, () => clock.now);
  assert.equal(limiter.burst, 6);
  for (let i = 0; i < 6; i++) assert.equal(limiter.take('alice'), 0);
  assert.notEqual(limiter.take('alice'), 0);
});

test('publishes are charged to the token subject, to the address when anonymous, never to the publisher key', () => {
  const clock = manualClock();
  const limiter = new RateLimiter(1, 1, () => clock.now);
  const alice = grant('token', 'alice');
  assert.equal(limiter.takePublish(alice, '10.0.0.1'), 0);
  assert.notEqual(limiter.takePublish(alice, '10.0.0.2'), 0, 'the same subject from another address shares its bucket');
  const anonymous = grant('anonymous', 'anonymous');
  assert.equal(limiter.takePublish(anonymous, '10.0.0.1'), 0);
  assert.notEqual(limiter.takePublish(anonymous, '10.0.0.1'), 0);
  assert.equal(limiter.takePublish(anonymous, '10.0.0.3'), 0, 'another anonymous address has its own bucket');
  const backend = grant('publisher-key', 'publisher-key');
  for (let i = 0; i < 100; i++) assert.equal(limiter.takePublish(backend, '10.0.0.1'), 0);
  assert.equal(limiter.take('ip:10.0.0.1') > 0, true, 'the anonymous bucket is keyed by ip:<address>');
});

test('prune forgets only buckets that have refilled completely', () => {
  const clock = manualClock();
  const limiter = new RateLimiter(1, 2, () => clock.now);
  limiter.take('early');
  limiter.take('early');
  clock.advance(1500);
  limiter.take('late');
  limiter.prune();
  assert.equal(limiter.size, 2, 'early has 1.5 of 2 tokens, late 1 of 2: both kept');
  clock.advance(600);
  limiter.prune();
  assert.equal(limiter.size, 1, 'early is full after 2.1 s, late is not after 0.6 s');
  clock.advance(1000);
  limiter.prune();
  assert.equal(limiter.size, 0);
  assert.equal(limiter.take('early'), 0, 'a forgotten key starts again with a full bucket');
  assert.equal(limiter.take('early'), 0);
});
