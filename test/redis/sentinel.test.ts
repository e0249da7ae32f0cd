import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type Attempt,
  assertEverythingOrGap,
  byChannel,
  publishAttempt,
  publishUntilStored,
  subscribe,
} from '../helpers/failover.js';
import { waitFor } from '../helpers/hub.js';
import { startKometa, uniquePrefix } from '../helpers/redis.js';
import { ask, startOwnSentinels } from '../helpers/redis-cluster.js';

const CHANNELS = Array.from({ length: 50 }, (_, i) => `s${i}`);

test('Redis Sentinel failover: the master killed mid-stream, three sentinels promote its replica; publishes answer ' +
  '503 meanwhile and 201 again by themselves; every subscriber gets everything after its cursor or an explicit gap, ' +
  'never a duplicate', async (t) => {
  const redis = await startOwnSentinels({ replicas: 1, downAfterMs: 1000 });
  t.after(() => redis.stop());
  const prefix = uniquePrefix('sentinel');
  const [a, b] = await Promise.all(
    [0, 1].map(() =>
      startKometa([
        '--redis-sentinel',
        redis.seeds,
        '--redis-master',
        redis.name,
        '--redis-prefix',
        prefix,
        '--max-channels',
        String(CHANNELS.length),
        '--publish-rate',
        '0',
        '--retry',
        '0.2',
        '--max-queue-bytes',
        '16777216',
      ]),
    ),
  );
  t.after(() => a!.kill('SIGKILL'));
  t.after(() => b!.kill('SIGKILL'));
  assert.match(a!.output(), new RegExp(`redis master "${redis.name}" via sentinels`), 'the banner names the sentinels');

  const attempts: Attempt[] = [];
  const counters = new Map(CHANNELS.map((c) => [c, 0]));
  const next = (c: string) => () => {
    const k = counters.get(c)! + 1;
    counters.set(c, k);
    return k;
  };
  const start = await Promise.all(
    CHANNELS.map((c) => publishUntilStored(a!, c, next(c), attempts, () => redis.describe())),
  );
  const cursor0 = start.map((s) => s.id!).join(',');
  const subs = [subscribe(t, a!, cursor0, CHANNELS), subscribe(t, b!, cursor0, CHANNELS)];
  assert.equal(await redis.currentMaster(), redis.master.port);

  let killedAt = -1;
  let recovered = false;
  let stop = false;
  const deadline = Date.now() + 90_000;
  let turn = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (!stop && Date.now() < deadline) {
        const c = CHANNELS[turn++ % CHANNELS.length]!;
        const attempt = await publishAttempt(turn % 2 === 0 ? a! : b!, c, next(c)());
        attempts.push(attempt);
        if (killedAt < 0 && attempts.length >= 400) {
          killedAt = attempts.length;
          await redis.master.kill();
        }
        if (killedAt >= 0 && attempt.status !== 201) await new Promise((r) => setTimeout(r, 20));
        if (
          killedAt >= 0 &&
          !recovered &&
          attempt.status === 201 &&
          attempts.slice(killedAt).some((x) => x.status === 503)
        )
          recovered = true;
        if (recovered && attempts.length > killedAt + 400) stop = true;
      }
    }),
  );
  assert.ok(killedAt > 0 && recovered, 'the failover happened and publishing recovered by itself');
  const refused = attempts.filter((x) => x.status !== 201);
  for (const x of refused)
    assert.deepEqual(
      [x.status, x.code],
      [503, 'KOMETA_ERR_BROKER_UNAVAILABLE'],
      'refused with 503 KOMETA_ERR_BROKER_UNAVAILABLE',
    );
  assert.equal(
    await agreedMaster(redis, redis.replicas[0]!.port),
    redis.replicas[0]!.port,
    'the sentinels promoted the replica',
  );
  t.diagnostic(`${attempts.length - killedAt} publishes after the kill, ${refused.length} answered 503`);

  const last = new Map<string, number>();
  await Promise.all(
    CHANNELS.map(async (c, i) =>
      last.set(c, (await publishUntilStored(i % 2 === 0 ? a! : b!, c, next(c), attempts, () => redis.describe())).k),
    ),
  );
  for (const sub of subs) {
    await waitFor(
      () => CHANNELS.every((c) => byChannel(sub.received).get(c)?.at(-1)?.k === last.get(c)),
      60_000,
      'every subscriber to get the last message of every channel',
    );
  }
  await new Promise((r) => setTimeout(r, 300));
  t.diagnostic(`gap notices: ${subs.map((s) => s.gaps.length).join(' and ')}`);
  for (const sub of subs) assertEverythingOrGap(sub, CHANNELS, attempts, 1);

  // After the failover, cursors resume on either node with nothing twice.
  const [onA, onB] = subs;
  onA!.close();
  onB!.close();
  const moved = [subscribe(t, b!, onA!.lastId(), CHANNELS), subscribe(t, a!, onB!.lastId(), CHANNELS)];
  const after = await Promise.all(
    CHANNELS.map((c, i) => publishUntilStored(i % 2 === 0 ? b! : a!, c, next(c), attempts, () => redis.describe())),
  );
  for (const sub of moved)
    await waitFor(
      () => sub.received.length >= CHANNELS.length,
      30_000,
      'the resumed subscribers to get the next round',
    );
  await new Promise((r) => setTimeout(r, 200));
  for (const sub of moved) {
    assert.deepEqual(sub.gaps, []);
    assert.deepEqual(
      sub.received.map((r) => r.data).sort(),
      after.map((x) => `${x.channel}|${x.k}`).sort(),
      'exactly the messages after the cursor',
    );
  }
});

test('Redis Sentinel failover to a replica that had not caught up: the lost positions are never reused; subscribers ' +
  'get an epoch-changed gap', async (t) => {
  const redis = await startOwnSentinels({ replicas: 1, downAfterMs: 1000 });
  t.after(() => redis.stop());
  const prefix = uniquePrefix('sentinel-lag');
  const [a, b] = await Promise.all(
    [0, 1].map(() =>
      startKometa([
        '--redis-sentinel',
        redis.seeds,
        '--redis-master',
        redis.name,
        '--redis-prefix',
        prefix,
        '--max-channels',
        String(CHANNELS.length),
        '--publish-rate',
        '0',
        '--retry',
        '0.2',
        '--max-queue-bytes',
        '16777216',
      ]),
    ),
  );
  t.after(() => a!.kill('SIGKILL'));
  t.after(() => b!.kill('SIGKILL'));
  const attempts: Attempt[] = [];
  const counters = new Map(CHANNELS.map((c) => [c, 0]));
  const next = (c: string) => () => {
    const k = counters.get(c)! + 1;
    counters.set(c, k);
    return k;
  };
  const storeRound = () =>
    Promise.all(
      CHANNELS.map((c, i) => publishUntilStored(i % 2 === 0 ? a! : b!, c, next(c), attempts, () => redis.describe())),
    );
  const start = await storeRound();
  const cursor0 = start.map((s) => s.id!).join(',');
  const subs = [subscribe(t, a!, cursor0, CHANNELS), subscribe(t, b!, cursor0, CHANNELS)];
  await storeRound(); // k = 2, replicated

  // The replica freezes and loses its link: what the master accepts now, it never gets.
  const lagging = redis.replicas[0]!;
  lagging.pause();
  await ask(redis.master.port, (r) => r.call('CLIENT', 'KILL', 'TYPE', 'replica'));
  await storeRound(); // k = 3, answered 201 by the master alone
  await waitFor(
    () => subs.every((s) => CHANNELS.every((c) => byChannel(s.received).get(c)?.at(-1)?.k === 3)),
    30_000,
    'the unreplicated round to be delivered',
  );
  const cursorBefore = subs[0]!.lastId();
  await redis.master.kill();
  lagging.resume();

  const after = await storeRound(); // k >= 4, after 503s
  assert.equal(await agreedMaster(redis, lagging.port), lagging.port, 'the lagging replica was promoted');
  for (const sub of subs) {
    await waitFor(
      () => CHANNELS.every((c) => byChannel(sub.received).get(c)?.at(-1)?.k === counters.get(c)),
      60_000,
      'every subscriber to get the round after the failover',
    );
  }
  await new Promise((r) => setTimeout(r, 300));
  for (const sub of subs) {
    assertEverythingOrGap(sub, CHANNELS, attempts, 1);
    const got = byChannel(sub.received);
    for (const c of CHANNELS) {
      const gaps = sub.gaps.filter((g) => (g as { channel?: string }).channel === c);
      assert.deepEqual(
        gaps.map((g) => g.reason),
        ['epoch-changed'],
        `${c}: one epoch-changed gap`,
      );
      const list = got.get(c)!;
      const old = list.find((d) => d.k === 3)!;
      assert.ok(
        list.filter((d) => d.k > 3).every((d) => d.epoch !== old.epoch),
        `${c}: what came after is in a new epoch`,
      );
    }
  }
  // Back with the cursor from before the failover, on the other node: a gap, then the new epoch.
  const returning = subscribe(t, b!, cursorBefore, CHANNELS);
  await waitFor(
    () => returning.received.length >= after.length && returning.gaps.length >= CHANNELS.length,
    30_000,
    'the returning subscriber to catch up',
  );
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(
    returning.gaps.map((g) => g.reason),
    CHANNELS.map(() => 'epoch-changed'),
  );
  assert.deepEqual(returning.received.map((r) => r.data).sort(), after.map((x) => `${x.channel}|${x.k}`).sort());
});

/**
 * The master the sentinels name, asked until it is `expected` (or 15 s pass):
 * the sentinel asked first may not have heard of the failover yet on a busy
 * machine while the others, and the broker, already follow the new master.
 */
async function agreedMaster(
  redis: { currentMaster(): Promise<number | undefined> },
  expected: number,
): Promise<number | undefined> {
  const deadline = Date.now() + 15_000;
  let master = await redis.currentMaster();
  while (master !== expected && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    master = await redis.currentMaster();
  }
  return master;
}
