import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { keySlot } from '../../src/brokers/redis-cluster.js';
import {
  type Attempt,
  assertEverythingOrGap,
  byChannel,
  publishAttempt,
  publishUntilStored,
  subscribe,
} from '../helpers/failover.js';
import { waitFor } from '../helpers/hub.js';
import { type KometaProcess, startKometa, uniquePrefix } from '../helpers/redis.js';
import { type OwnCluster, ask, startOwnCluster } from '../helpers/redis-cluster.js';

type After = { after(fn: () => Promise<void> | void): void };

const CHANNELS = Array.from({ length: 200 }, (_, i) => `c${i}`);

/** A 3-master, 3-replica Redis Cluster of the test's own (every process killed by PID afterwards). */
async function ownCluster(t: After): Promise<OwnCluster> {
  const cluster = await startOwnCluster({ masters: 3, replicas: 1, nodeTimeoutMs: 1000 });
  t.after(() => cluster.stop());
  return cluster;
}

async function kometaNodes(t: After, cluster: OwnCluster, prefix: string): Promise<KometaProcess[]> {
  const nodes = await Promise.all(
    [0, 1].map(() =>
      // Every SSE id is a 200-channel cursor (~4 KB): a roomier queue keeps a subscriber on a busy machine from being
      // closed as slow.
      startKometa([
        '--redis-cluster',
        cluster.seeds,
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
  for (const node of nodes) t.after(() => node.kill('SIGKILL'));
  return nodes;
}

/** Publishes per node: classic PUBLISH goes over the cluster bus to every node, SPUBLISH does not. */
async function busPublishes(cluster: OwnCluster): Promise<number> {
  let total = 0;
  for (const node of cluster.nodes.filter((n) => n.alive)) {
    const info = await ask(node.port, (r) => r.cluster('INFO'));
    total += Number(/cluster_stats_messages_publish_sent:(\d+)/.exec(String(info))?.[1] ?? 0);
  }
  return total;
}

test('Redis Cluster, 3 masters + 3 replicas, two kometa nodes, 200 channels: messages published through both nodes ' +
  'reach subscribers on both, in order, and cursors resume on either node', async (t) => {
  const cluster = await ownCluster(t);
  const prefix = uniquePrefix('cluster');
  const [a, b] = await kometaNodes(t, cluster, prefix);

  // The channels are spread over every master.
  const slots = await cluster.slotMap();
  const masters = new Set(
    CHANNELS.map(
      (c) => slots.find(([from, to]) => keySlot(`${prefix}{${c}}`) >= from && keySlot(`${prefix}{${c}}`) <= to)![2],
    ),
  );
  assert.equal(masters.size, 3, 'the 200 channels live on all three masters');

  // A first message on every channel gives the subscribers a cursor, so they miss nothing however late they register.
  const attempts: Attempt[] = [];
  const start = await Promise.all(CHANNELS.map((c) => publishUntilStored(a!, c, () => 0, attempts)));
  const cursor0 = start.map((s) => s.id!).join(',');
  const onA = subscribe(t, a!, cursor0, CHANNELS);
  const onB = subscribe(t, b!, cursor0, CHANNELS);

  const round = async (from: number, to: number) => {
    const answers: Attempt[] = [];
    const queue: [string, number][] = [];
    for (let k = from; k <= to; k++) for (const c of CHANNELS) queue.push([c, k]);
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let job = queue.shift(); job !== undefined; job = queue.shift()) {
          const [c, k] = job;
          answers.push(await publishAttempt(k % 2 === 0 ? a! : b!, c, k));
        }
      }),
    );
    return answers;
  };
  const first = await round(1, 5);
  assert.deepEqual(
    first.filter((x) => x.status !== 201),
    [],
    'every publish is stored',
  );
  await waitFor(
    () => onA.received.length >= 1000 && onB.received.length >= 1000,
    30_000,
    '1,000 messages on both nodes',
  );

  // Each subscriber moves to the other node with its cursor.
  onA.close();
  onB.close();
  const movedToB = subscribe(t, b!, onA.lastId(), CHANNELS);
  const movedToA = subscribe(t, a!, onB.lastId(), CHANNELS);
  const second = await round(6, 10);
  assert.deepEqual(
    second.filter((x) => x.status !== 201),
    [],
    'every publish is stored',
  );
  await waitFor(
    () => movedToA.received.length >= 1000 && movedToB.received.length >= 1000,
    30_000,
    '1,000 more messages after the move',
  );
  await new Promise((r) => setTimeout(r, 200)); // anything extra (a duplicate) would show up by now

  const answered = new Map([...first, ...second].map((x) => [`${x.channel}|${x.k}`, x.id!]));
  for (const [before, after] of [
    [onA, movedToB],
    [onB, movedToA],
  ] as const) {
    assert.deepEqual([...before.gaps, ...after.gaps], [], 'no gap');
    const got = byChannel([...before.received, ...after.received]);
    assert.equal(got.size, CHANNELS.length);
    for (const c of CHANNELS) {
      const list = got.get(c)!;
      assert.deepEqual(
        list.map((d) => d.k),
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        `${c}: everything, in order, once`,
      );
      assert.deepEqual(
        list.map((d) => d.seq),
        [2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
        `${c}: consecutive positions`,
      );
      assert.equal(new Set(list.map((d) => d.epoch)).size, 1, `${c}: one epoch`);
      // The position each publisher was given is the one every subscriber saw.
      for (const d of list) assert.equal(answered.get(`${c}|${d.k}`), `${c}~${d.epoch}~${d.seq}`);
    }
  }
  // Sharded pub/sub: 2,200 publishes and not one went over the cluster bus to every node.
  assert.equal(await busPublishes(cluster), 0, 'no classic PUBLISH broadcast over the cluster bus');
});

test('Redis Cluster failover: a master killed mid-stream, its replica takes over; publishes answer 503 meanwhile ' +
  'and 201 again by themselves; every subscriber gets everything after its cursor or an explicit gap, never a ' +
  'duplicate', async (t) => {
  const cluster = await ownCluster(t);
  const prefix = uniquePrefix('failover');
  const [a, b] = await kometaNodes(t, cluster, prefix);
  const attempts: Attempt[] = [];
  const counters = new Map(CHANNELS.map((c) => [c, 0]));
  const next = (c: string) => () => {
    const k = counters.get(c)! + 1;
    counters.set(c, k);
    return k;
  };
  const start = await Promise.all(CHANNELS.map((c) => publishUntilStored(a!, c, next(c), attempts)));
  const cursor0 = start.map((s) => s.id!).join(',');
  const subs = [subscribe(t, a!, cursor0, CHANNELS), subscribe(t, b!, cursor0, CHANNELS)];

  // The master of c0's slot dies; its channels are the ones that must fail over.
  const slots = await cluster.slotMap();
  const masterOf = (c: string) =>
    slots.find(([from, to]) => keySlot(`${prefix}{${c}}`) >= from && keySlot(`${prefix}{${c}}`) <= to)![2];
  const victimPort = masterOf('c0');
  const victim = cluster.nodes.find((n) => n.port === victimPort)!;
  const affected = CHANNELS.filter((c) => masterOf(c) === victimPort);
  assert.ok(
    affected.length > 20 && affected.length < 180,
    `a third or so of the channels are on the victim (${affected.length})`,
  );

  // Four publishers, round-robin over the channels and both nodes, until the failover is over.
  let killedAt = -1;
  let recovered = false;
  let stop = false;
  const deadline = Date.now() + 90_000;
  let cursor = 0;
  const publishers = Array.from({ length: 4 }, async () => {
    while (!stop && Date.now() < deadline) {
      const c = CHANNELS[cursor++ % CHANNELS.length]!;
      const attempt = await publishAttempt(cursor % 2 === 0 ? a! : b!, c, next(c)());
      attempts.push(attempt);
      if (killedAt < 0 && attempts.length >= 800) {
        killedAt = attempts.length;
        await victim.kill();
      }
      if (killedAt >= 0 && attempt.status !== 201) await new Promise((r) => setTimeout(r, 20));
      // Over once the victim's channels were refused and then are stored again.
      if (killedAt >= 0 && !recovered && attempt.status === 201 && affected.includes(c)) {
        const refused = attempts.slice(killedAt).some((x) => x.status === 503 && affected.includes(x.channel));
        if (refused) recovered = true;
      }
      if (recovered && attempts.length > killedAt + 600) stop = true;
    }
  });
  await Promise.all(publishers);
  assert.ok(killedAt > 0 && recovered, 'the failover happened and publishing recovered by itself');
  const refused = attempts.filter((x) => x.status !== 201);
  assert.ok(refused.length > 0, 'some publishes were refused during the failover');
  for (const x of refused)
    assert.deepEqual(
      [x.status, x.code],
      [503, 'KOMETA_ERR_BROKER_UNAVAILABLE'],
      'refused with 503 KOMETA_ERR_BROKER_UNAVAILABLE',
    );
  assert.notEqual(await cluster.masterOf(keySlot(`${prefix}{c0}`)), victimPort, 'a replica took over the slot');
  t.diagnostic(
    `${attempts.length - killedAt} publishes after the kill, ${refused.length} answered 503, ${affected.length} ` +
      `channels on the dead master`,
  );

  // A last message on every channel, through both nodes: nobody may stay silent.
  const last = new Map<string, number>();
  await Promise.all(
    CHANNELS.map(async (c, i) => {
      const stored = await publishUntilStored(i % 2 === 0 ? a! : b!, c, next(c), attempts);
      last.set(c, stored.k);
    }),
  );
  for (const sub of subs) {
    await waitFor(
      () => {
        const got = byChannel(sub.received);
        return CHANNELS.every((c) => got.get(c)?.at(-1)?.k === last.get(c));
      },
      60_000,
      'every subscriber to get the last message of every channel',
    );
  }
  await new Promise((r) => setTimeout(r, 300));

  t.diagnostic(`gap notices: ${subs.map((s) => s.gaps.length).join(' and ')}`);
  for (const sub of subs) {
    assertEverythingOrGap(sub, CHANNELS, attempts, 1);
    // Gaps (if any: a replica that had not caught up) only on the victim's channels.
    for (const gap of sub.gaps)
      assert.ok(
        affected.includes((gap as { channel?: string }).channel!),
        `a gap on a channel of the dead master only`,
      );
  }

  // After the failover, cursors still resume on either node, with nothing twice.
  const [onA, onB] = subs;
  onA!.close();
  onB!.close();
  const movedToB = subscribe(t, b!, onA!.lastId(), CHANNELS);
  const movedToA = subscribe(t, a!, onB!.lastId(), CHANNELS);
  const after = await Promise.all(
    CHANNELS.map((c, i) => publishUntilStored(i % 2 === 0 ? b! : a!, c, next(c), attempts)),
  );
  for (const moved of [movedToA, movedToB]) {
    await waitFor(
      () => moved.received.length >= CHANNELS.length,
      30_000,
      'the resumed subscribers to get the next round',
    );
  }
  await new Promise((r) => setTimeout(r, 200));
  for (const moved of [movedToA, movedToB]) {
    assert.deepEqual(moved.gaps, []);
    assert.deepEqual(
      moved.received.map((r) => r.data).sort(),
      after.map((x) => `${x.channel}|${x.k}`).sort(),
      'exactly the messages after the cursor',
    );
  }
});

test('Redis Cluster failover to a replica that had not caught up: the lost positions are never reused; subscribers ' +
  'get an epoch-changed gap, live and on resume', async (t) => {
  const cluster = await ownCluster(t);
  const prefix = uniquePrefix('lagging');
  const [a, b] = await kometaNodes(t, cluster, prefix);
  const attempts: Attempt[] = [];
  const counters = new Map(CHANNELS.map((c) => [c, 0]));
  const next = (c: string) => () => {
    const k = counters.get(c)! + 1;
    counters.set(c, k);
    return k;
  };
  const storeRound = (channels: string[]) =>
    Promise.all(channels.map((c, i) => publishUntilStored(i % 2 === 0 ? a! : b!, c, next(c), attempts)));
  const start = await storeRound(CHANNELS);
  const cursor0 = start.map((s) => s.id!).join(',');
  const subs = [subscribe(t, a!, cursor0, CHANNELS), subscribe(t, b!, cursor0, CHANNELS)];
  const slots = await cluster.slotMap();
  const masterOf = (c: string) =>
    slots.find(([from, to]) => keySlot(`${prefix}{${c}}`) >= from && keySlot(`${prefix}{${c}}`) <= to)![2];
  const victimPort = masterOf('c0');
  const victim = cluster.nodes.find((n) => n.port === victimPort)!;
  const replicaPort = await cluster.replicaOf(victimPort);
  const lagging = cluster.nodes.find((n) => n.port === replicaPort)!;
  const affected = CHANNELS.filter((c) => masterOf(c) === victimPort);

  await storeRound(CHANNELS); // k = 2, replicated
  await waitFor(
    () => subs.every((s) => s.received.length >= 2 * CHANNELS.length - CHANNELS.length),
    30_000,
    'the second round',
  );

  // The replica freezes and loses its link: what the master accepts now, it never gets.
  lagging.pause();
  await ask(victimPort, (r) => r.call('CLIENT', 'KILL', 'TYPE', 'replica'));
  const unreplicated = await storeRound(affected); // k = 3, answered 201 by the master alone
  await waitFor(
    () => subs.every((s) => affected.every((c) => byChannel(s.received).get(c)?.at(-1)?.k === 3)),
    30_000,
    'the unreplicated round to be delivered',
  );
  const cursorBefore = subs[0]!.lastId();

  // The master dies; the replica wakes up without those messages and is promoted.
  await victim.kill();
  lagging.resume();
  const after = await storeRound(CHANNELS); // k = 4 (more on the affected ones, after 503s)
  assert.equal(await cluster.masterOf(keySlot(`${prefix}{c0}`)), replicaPort, 'the lagging replica took over');
  for (const sub of subs) {
    await waitFor(
      () => CHANNELS.every((c) => byChannel(sub.received).get(c)?.at(-1)?.k === counters.get(c)),
      60_000,
      'every subscriber to get the round after the failover',
    );
  }
  t.diagnostic(
    `${attempts.filter((x) => x.status === 503).length} publishes answered 503; ${affected.length} channels on the ` +
      `dead master`,
  );

  for (const sub of subs) {
    const got = byChannel(sub.received);
    for (const c of CHANNELS) {
      const list = got.get(c)!;
      const ks = list.map((d) => d.k);
      for (let i = 1; i < ks.length; i++) assert.ok(ks[i]! > ks[i - 1]!, `${c}: in order, never twice`);
      const gaps = sub.gaps.filter((g) => (g as { channel?: string }).channel === c);
      if (!affected.includes(c)) {
        assert.deepEqual(gaps, [], `${c}: no gap on a channel of a master that stayed`);
        assert.equal(new Set(list.map((d) => d.epoch)).size, 1);
        continue;
      }
      // Position 3 of the old epoch was seen here and lost by Redis: the channel moved to a new epoch, and said so.
      assert.equal(gaps.length, 1, `${c}: one gap notice`);
      assert.equal(gaps[0]!.reason, 'epoch-changed');
      const old = list.find((d) => d.k === 3)!;
      const later = list.filter((d) => d.k > 3);
      assert.ok(
        later.length > 0 && later.every((d) => d.epoch !== old.epoch && d.epoch === gaps[0]!.epoch),
        `${c}: later messages are in the new epoch`,
      );
      const index = (k: number) => sub.received.findIndex((r) => r.data === `${c}|${k}`);
      assert.ok(
        index(3) < gaps[0]!.at && index(later[0]!.k) >= gaps[0]!.at,
        `${c}: the gap notice comes between the old epoch and the new`,
      );
    }
  }

  // A subscriber that was away over the failover comes back with its old cursor on the other node: a gap, then the new
  // epoch.
  const returning = subscribe(t, b!, cursorBefore, CHANNELS);
  await waitFor(
    () => returning.received.length >= after.length && returning.gaps.length >= affected.length,
    30_000,
    'the returning subscriber to catch up',
  );
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(
    new Set(returning.gaps.map((g) => (g as { channel?: string }).channel)),
    new Set(affected),
    'a gap for each channel of the dead master',
  );
  for (const gap of returning.gaps) assert.equal(gap.reason, 'epoch-changed');
  const back = byChannel(returning.received);
  for (const c of CHANNELS) {
    const ks = back.get(c)!.map((d) => d.k);
    const expected = attempts
      .filter((x) => x.channel === c && x.status === 201 && x.k > (affected.includes(c) ? 3 : 2))
      .map((x) => x.k)
      .sort((p, q) => p - q);
    assert.deepEqual(
      ks,
      expected,
      `${c}: exactly what was stored after the cursor (in the new epoch for the dead master's channels)`,
    );
  }
  assert.ok(unreplicated.length === affected.length);
});

test('Redis Cluster slot migration mid-stream (redis-cli --cluster reshard): publishes follow MOVED and ASK, ' +
  'subscribers follow their channels to the new master, nothing lost, nothing twice', async (t) => {
  const cluster = await startOwnCluster({ masters: 3, replicas: 0 });
  t.after(() => cluster.stop());
  const prefix = uniquePrefix('reshard');
  const [a, b] = await kometaNodes(t, cluster, prefix);
  const attempts: Attempt[] = [];
  const counters = new Map(CHANNELS.map((c) => [c, 0]));
  const next = (c: string) => () => {
    const k = counters.get(c)! + 1;
    counters.set(c, k);
    return k;
  };
  const start = await Promise.all(CHANNELS.map((c) => publishUntilStored(a!, c, next(c), attempts)));
  const subs = [
    subscribe(t, a!, start.map((s) => s.id!).join(','), CHANNELS),
    subscribe(t, b!, start.map((s) => s.id!).join(','), CHANNELS),
  ];
  // One round delivered everywhere first, so the subscriptions are live before the migration starts.
  await Promise.all(CHANNELS.map((c, i) => publishUntilStored(i % 2 === 0 ? a! : b!, c, next(c), attempts)));
  await waitFor(() => subs.every((s) => s.received.length >= CHANNELS.length), 30_000, 'the first round on both nodes');

  const slotOf = (c: string) => keySlot(`${prefix}{${c}}`);
  const before = await cluster.slotMap();
  const ownerIn = (map: [number, number, number][], c: string) =>
    map.find(([from, to]) => slotOf(c) >= from && slotOf(c) <= to)![2];
  const fromPort = ownerIn(before, 'c0');
  const toPort = cluster.nodes.map((n) => n.port).find((p) => p !== fromPort)!;
  const idOf = async (port: number) => String(await ask(port, (r) => r.cluster('MYID')));

  let resharded = false;
  let stop = false;
  let turn = 0;
  const publishing = Promise.all(
    Array.from({ length: 4 }, async () => {
      let afterwards = 0;
      while (!stop) {
        const c = CHANNELS[turn++ % CHANNELS.length]!;
        const attempt = await publishAttempt(turn % 2 === 0 ? a! : b!, c, next(c)());
        attempts.push(attempt);
        if (attempt.status !== 201) await new Promise((r) => setTimeout(r, 20));
        if (resharded && ++afterwards > 100) stop = true;
      }
    }),
  );
  await new Promise((r) => setTimeout(r, 300));
  await promisify(execFile)(
    'redis-cli',
    [
      '--cluster',
      'reshard',
      `127.0.0.1:${fromPort}`,
      '--cluster-from',
      await idOf(fromPort),
      '--cluster-to',
      await idOf(toPort),
      '--cluster-slots',
      '3000',
      '--cluster-yes',
    ],
    { timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
  );
  resharded = true;
  await publishing;
  const after = await cluster.slotMap();
  const moved = CHANNELS.filter((c) => ownerIn(before, c) !== ownerIn(after, c));
  assert.ok(moved.length > 0, 'some of the channels changed master');
  t.diagnostic(
    `${moved.length} channels moved; ${attempts.length} publishes, ` +
      `${attempts.filter((x) => x.status !== 201).length} answered 503`,
  );
  for (const x of attempts.filter((x) => x.status !== 201))
    assert.deepEqual([x.status, x.code], [503, 'KOMETA_ERR_BROKER_UNAVAILABLE']);

  const last = new Map<string, number>();
  await Promise.all(
    CHANNELS.map(async (c, i) =>
      last.set(c, (await publishUntilStored(i % 2 === 0 ? a! : b!, c, next(c), attempts)).k),
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
  for (const sub of subs) {
    assert.deepEqual(sub.gaps, [], 'a migration loses nothing');
    assertEverythingOrGap(sub, CHANNELS, attempts, 1);
  }
});
