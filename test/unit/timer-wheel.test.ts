import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import { TimerWheel } from '../../src/core/timer-wheel.js';

/*
 * The wheel reads performance.now() and runs one setInterval; both are
 * replaced here by a fake clock that moves only when the test says, so
 * nothing sleeps and every bound below is exact.
 */
interface FakeTime {
  /** Milliseconds since the fake clock started. */
  readonly now: number;
  /** Intervals currently running (the wheel should have at most one, and none when empty). */
  readonly intervals: number;
  advance(ms: number): void;
}

function fakeTime(t: TestContext): FakeTime {
  let now = 0;
  let nextId = 1;
  const intervals = new Map<number, { fn: () => void; ms: number; next: number }>();
  t.mock.method(performance, 'now', () => 5_000 + now);
  t.mock.method(globalThis, 'setInterval', (fn: () => void, ms: number) => {
    const id = nextId++;
    intervals.set(id, { fn, ms, next: now + ms });
    return { id, unref() {}, ref() {}, [Symbol.toPrimitive]: () => id };
  });
  t.mock.method(globalThis, 'clearInterval', (handle: { id: number } | undefined) => {
    if (handle !== undefined) intervals.delete(handle.id);
  });
  return {
    get now() {
      return now;
    },
    get intervals() {
      return intervals.size;
    },
    advance(ms: number) {
      for (let step = 0; step < ms; step++) {
        now++;
        for (const interval of [...intervals.values()]) {
          if (interval.next > now) continue;
          interval.next += interval.ms;
          interval.fn();
        }
      }
    },
  };
}

test('a task never runs before its delay, and runs within one tick after it', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(100);
  time.advance(30);
  let ranAt: number | undefined;
  wheel.schedule(250, () => (ranAt = time.now));
  time.advance(249);
  assert.equal(ranAt, undefined, 'not before 250 ms');
  time.advance(150);
  assert.ok(ranAt !== undefined, 'ran');
  assert.ok(ranAt >= 30 + 250 && ranAt <= 30 + 250 + 100, `ran ${ranAt - 30} ms after it was scheduled`);
});

test('tasks run in the order of their deadlines, and in scheduling order within one tick', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(50);
  const order: string[] = [];
  wheel.schedule(400, () => order.push('d'));
  wheel.schedule(120, () => order.push('b1'));
  wheel.schedule(10, () => order.push('a'));
  wheel.schedule(120, () => order.push('b2'));
  wheel.schedule(260, () => order.push('c'));
  assert.equal(wheel.size, 5);
  time.advance(1000);
  assert.deepEqual(order, ['a', 'b1', 'b2', 'c', 'd']);
  assert.equal(wheel.size, 0);
});

test('a delay of zero still waits for the next tick instead of running at once', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(20);
  let ran = false;
  wheel.schedule(0, () => (ran = true));
  assert.equal(ran, false);
  time.advance(20);
  assert.equal(ran, true);
});

test('a cancelled task never runs, and cancelling twice or after it ran changes nothing', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(10);
  const ran: string[] = [];
  const a = wheel.schedule(50, () => ran.push('a'));
  const b = wheel.schedule(50, () => ran.push('b'));
  a.cancel();
  a.cancel();
  assert.equal(wheel.size, 1);
  time.advance(100);
  assert.deepEqual(ran, ['b']);
  b.cancel();
  assert.equal(wheel.size, 0);
  const c = wheel.schedule(30, () => ran.push('c'));
  time.advance(100);
  c.cancel();
  assert.deepEqual(ran, ['b', 'c']);
  assert.equal(wheel.size, 0);
});

test('the interval runs only while something is scheduled', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(10);
  assert.equal(time.intervals, 0, 'an empty wheel has no timer');
  const first = wheel.schedule(100, () => {});
  wheel.schedule(30, () => {});
  assert.equal(time.intervals, 1, 'one timer for every task');
  time.advance(50);
  assert.equal(time.intervals, 1);
  first.cancel();
  assert.equal(time.intervals, 0, 'cancelling the last task stops the timer');
  wheel.schedule(20, () => {});
  time.advance(40);
  assert.equal(time.intervals, 0, 'running the last task stops the timer');
});

test('a wheel that sat empty for a long time does not run a new task early', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(100);
  wheel.schedule(10, () => {});
  time.advance(200);
  time.advance(10_000);
  const scheduledAt = time.now;
  let ranAt: number | undefined;
  wheel.schedule(150, () => (ranAt = time.now));
  time.advance(149);
  assert.equal(ranAt, undefined);
  time.advance(200);
  const after = (ranAt ?? Number.NaN) - scheduledAt;
  assert.ok(after >= 150 && after <= 250, `ran after ${after} ms`);
  assert.ok(wheel.tick >= Math.floor((ranAt ?? 0) / 100), 'the tick follows the clock');
});

test('a task that throws does not stop the others in its tick; its error is rethrown on its own', (t) => {
  const time = fakeTime(t);
  const thrown: Array<() => void> = [];
  t.mock.method(globalThis, 'queueMicrotask', (fn: () => void) => thrown.push(fn));
  const wheel = new TimerWheel(10);
  const ran: string[] = [];
  wheel.schedule(20, () => ran.push('first'));
  wheel.schedule(20, () => {
    throw new Error('task failed');
  });
  wheel.schedule(20, () => ran.push('third'));
  time.advance(40);
  assert.deepEqual(ran, ['first', 'third']);
  assert.equal(thrown.length, 1);
  assert.throws(thrown[0]!, /task failed/);
  assert.equal(wheel.size, 0);
});

test('clear() drops every task: none runs and the timer stops', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(10);
  let ran = 0;
  const kept = wheel.schedule(30, () => ran++);
  wheel.schedule(60, () => ran++);
  wheel.clear();
  assert.equal(wheel.size, 0);
  assert.equal(time.intervals, 0);
  time.advance(200);
  assert.equal(ran, 0);
  kept.cancel();
  assert.equal(wheel.size, 0, 'cancelling a cleared task does not count it twice');
});

test('every() runs at its period, counted in ticks, until cancelled; the wheel then stops', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(100);
  const runs: number[] = [];
  const task = wheel.every(250, () => runs.push(time.now));
  // 250 ms rounds to 3 ticks of 100 ms: runs at 300, 600, 900 … and never drifts later.
  time.advance(1000);
  assert.deepEqual(runs, [300, 600, 900]);
  assert.equal(wheel.size, 1, 'one entry on the wheel whatever the number of runs');
  task.cancel();
  time.advance(1000);
  assert.deepEqual(runs, [300, 600, 900]);
  assert.equal(time.intervals, 0);
});

test('every() goes on after a run that throws, and a run may cancel its own task', (t) => {
  const time = fakeTime(t);
  const wheel = new TimerWheel(100);
  let runs = 0;
  const errors: unknown[] = [];
  t.mock.method(globalThis, 'queueMicrotask', (fn: () => void) => {
    try {
      fn();
    } catch (error) {
      errors.push(error);
    }
  });
  const task = wheel.every(100, () => {
    runs++;
    if (runs === 1) throw new Error('first run fails');
    if (runs === 3) task.cancel();
  });
  time.advance(1000);
  assert.equal(runs, 3);
  assert.equal(errors.length, 1);
  assert.equal(wheel.size, 0);
});
