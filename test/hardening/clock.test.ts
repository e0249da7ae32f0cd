import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { EventSource } from 'eventsource';
import { type TestHub, httpRequest, startHub } from '../helpers/hub.js';
import { StreamReader } from '../helpers/streams.js';
import { PUBLISHER_KEY, sleep, token, tokenPolicy } from './helpers.js';

/*
 * The hub under a wall clock that steps back and forward (NTP, a VM resume),
 * injected for the whole process: this file runs in its own process and
 * replaces Date.now, which is what faketime's CLOCK_REALTIME would move, while
 * the monotonic clock (performance.now, libuv timers) runs on. Durations,
 * timeouts and rates must not notice; token expiry follows the wall clock
 * (exp is a wall-clock fact), never earlier or later than exp + 5 s skew by
 * that clock (idle streams re-check it at least every 10 s).
 */
const realNow = Date.now.bind(Date);
let offsetMs = 0;
Date.now = () => realNow() + offsetMs;
const HOUR = 3_600_000;

/** Wait on the monotonic clock (the helpers' deadlines read Date.now, which jumps here). */
async function until(predicate: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

let hub: TestHub;

before(async () => {
  hub = await startHub({ http: { access: await tokenPolicy(), publishRate: 5 } });
});

after(async () => {
  offsetMs = 0;
  await hub.close();
});

test('a rate-limited publisher is not locked out when the wall clock steps back an hour', async () => {
  const credential = await token(['rate.*'], Math.floor(realNow() / 1000) + 3600);
  const pub = () => httpRequest(`${hub.url}/pub/rate.room`, { method: 'POST', headers: { Authorization: `Bearer ${credential}` }, body: 'x' });
  try {
    await rateAcrossSteps(pub);
  } finally {
    offsetMs = 0;
  }
});

async function rateAcrossSteps(pub: () => ReturnType<typeof httpRequest>): Promise<void> {
  let refused = await pub();
  for (let i = 0; i < 30 && refused.status === 201; i++) refused = await pub();
  assert.equal(refused.status, 429, 'the burst runs out');
  offsetMs = -HOUR;
  const afterStep = await pub();
  if (afterStep.status === 429) assert.ok(Number(afterStep.headers['retry-after']) <= 1, `Retry-After ${afterStep.headers['retry-after']} s after the step back`);
  await sleep(1100);
  assert.equal((await pub()).status, 201, 'a second later the publisher may publish again');
  offsetMs = HOUR;
  await sleep(1100);
  assert.equal((await pub()).status, 201, 'and after a step forward');
}

test('open streams keep flowing and long-polls still time out while the wall clock jumps', async () => {
  const received: string[] = [];
  // Valid for a day: none of the steps below takes it past its exp.
  const credential = await token(['jump.*'], Math.floor(realNow() / 1000) + 24 * 3600);
  const source = new EventSource(`${hub.url}/sub/jump.room?token=${credential}`);
  source.onmessage = (event) => received.push(event.data as string);
  await until(() => hub.hub.subscriberCount('jump.room') === 1, 'the SSE subscriber');
  try {
    for (const [step, offset] of [['back', -HOUR], ['forward', 2 * HOUR], ['home', 0]] as const) {
      offsetMs = offset;
      await httpRequest(`${hub.url}/pub/jump.room`, { method: 'POST', headers: { Authorization: `Bearer ${PUBLISHER_KEY}` }, body: step });
      await until(() => received.includes(step), `SSE message after the step ${step}`);
      // A long-poll asked to wait one second answers, empty, after about that (monotonic) second.
      const started = performance.now();
      const poll = await httpRequest(`${hub.url}/sub/jump.quiet?transport=poll&timeout=1`, { headers: { Authorization: `Bearer ${credential}` } });
      assert.equal(poll.status, 200, poll.body);
      assert.deepEqual(poll.json<{ messages: unknown[] }>().messages, []);
      assert.ok(performance.now() - started >= 900, `the poll was held (${step})`);
    }
  } finally {
    offsetMs = 0;
    source.close();
  }
});

test('a wall clock stepped forward past exp ends a token stream at its next message', async () => {
  const credential = await token(['fwd.*'], Math.floor(realNow() / 1000) + 600);
  const stream = await StreamReader.open(`${hub.url}/sub/fwd.room?transport=stream`, { Authorization: `Bearer ${credential}` });
  try {
    await until(() => hub.hub.subscriberCount('fwd.room') === 1, 'the stream subscriber');
    offsetMs = HOUR;
    await httpRequest(`${hub.url}/pub/fwd.room`, { method: 'POST', headers: { Authorization: `Bearer ${PUBLISHER_KEY}` }, body: 'after-exp' });
    await until(() => stream.ended, 'the stream to end');
    const lines = stream.json<{ type: string; data?: string; code?: string }>();
    assert.ok(!lines.some((l) => l.data === 'after-exp'), 'nothing is written after exp by the wall clock');
    assert.ok(lines.some((l) => l.code === 'KOMETA_ERR_TOKEN_EXPIRED'), JSON.stringify(lines));
  } finally {
    offsetMs = 0;
    stream.close();
  }
});

test('a wall clock stepped back keeps a token stream open past the monotonic moment it would have ended', async () => {
  const exp = Math.floor(realNow() / 1000) - 1; // with 5 s of skew: 3-4 s left, time to set up on a busy machine
  const credential = await token(['back.*'], exp);
  const stream = await StreamReader.open(`${hub.url}/sub/back.room?transport=stream`, { Authorization: `Bearer ${credential}` });
  try {
    await until(() => hub.hub.subscriberCount('back.room') === 1, 'the stream subscriber');
    offsetMs = -HOUR;
    await until(() => realNow() > (exp + 5) * 1000 + 500, 'the real end of the token', 10_000);
    await httpRequest(`${hub.url}/pub/back.room`, { method: 'POST', headers: { Authorization: `Bearer ${PUBLISHER_KEY}` }, body: 'still-valid' });
    await stream.waitFor((r) => r.text.includes('still-valid'), 5000, 'the message: by the wall clock the token is still valid');
    assert.equal(stream.ended, false);
  } finally {
    offsetMs = 0;
    stream.close();
  }
});
