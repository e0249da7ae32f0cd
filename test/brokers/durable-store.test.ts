import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { DataDirError, DurableBroker, type DurableBrokerOptions } from '../../src/brokers/durable.js';
import { KometaError } from '../../src/core/errors.js';
import type { Message } from '../../src/core/message.js';
import { tempDataDir } from '../helpers/data-dir.js';

type After = { after(fn: () => Promise<void> | void): void };

async function open(t: After, options: DurableBrokerOptions): Promise<DurableBroker> {
  const broker = await DurableBroker.open(options);
  t.after(() => broker.close());
  return broker;
}

function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.startsWith('seg-'))
    .sort();
}

/** Bytes of segment files now (one deleted between listing and stat counts 0: compaction runs meanwhile). */
function dirBytes(dir: string): number {
  return segmentFiles(dir).reduce(
    (sum, name) => sum + (statSync(join(dir, name), { throwIfNoEntry: false })?.size ?? 0),
    0,
  );
}

test('a reopened data directory has every channel’s epoch, positions and messages, and numbering goes ' +
  'on', async (t) => {
  const dir = tempDataDir('reopen');
  const first = await DurableBroker.open({ dir });
  const sent: Message[] = [];
  for (let i = 0; i < 30; i++)
    sent.push(await first.publish(`room${i % 3}`, `m${i}`, i % 2 === 0 ? { event: 'e' } : {}));
  await first.close();

  const second = await open(t, { dir });
  for (let c = 0; c < 3; c++) {
    const read = await second.read(`room${c}`, 0);
    const expected = sent.filter((m) => m.channel === `room${c}`);
    assert.deepEqual(
      read.messages.map((m) => [m.id, m.data, m.event, m.time]),
      expected.map((m) => [m.id, m.data, m.event, m.time]),
    );
    assert.equal(read.headSeq, 10);
  }
  const next = await second.publish('room0', 'after');
  assert.equal(next.epoch, sent[0]!.epoch);
  assert.equal(next.seq, 11);
  const unborn = await second.head('never');
  const third = await DurableBroker.open({ dir: tempDataDir('other') });
  t.after(() => third.close());
  assert.notEqual((await third.head('never')).epoch, unborn.epoch, 'another directory numbers in other epochs');
});

test('a torn last record (a crash mid-write) is cut off at start; everything before it is kept', async (t) => {
  const dir = tempDataDir('torn');
  const broker = await DurableBroker.open({ dir });
  for (let i = 1; i <= 5; i++) await broker.publish('c', `acknowledged ${i}`);
  await broker.close();
  const [file] = segmentFiles(dir);
  const path = join(dir, file!);
  const whole = statSync(path).size;
  // Half of a sixth record, as if the process died inside write(2).
  const half = Buffer.alloc(40, 0xab);
  half.writeUInt32LE(200, 0);
  appendFileSync(path, half);

  const reopened = await open(t, { dir });
  assert.deepEqual(
    reopened.repairs.map((r) => [r.file, r.offset, r.reason]),
    [[file, whole, 'torn']],
  );
  assert.equal(statSync(path).size, whole, 'the torn bytes are gone from the file');
  const read = await reopened.read('c', 0);
  assert.deepEqual(
    read.messages.map((m) => m.data),
    [1, 2, 3, 4, 5].map((i) => `acknowledged ${i}`),
  );
  assert.equal((await reopened.publish('c', 'next')).seq, 6);
});

test('a last record with a bad checksum or plain garbage after the log is dropped, never served', async (t) => {
  const dir = tempDataDir('garbage');
  const broker = await DurableBroker.open({ dir });
  for (let i = 1; i <= 3; i++) await broker.publish('c', `m${i}`);
  await broker.close();
  const path = join(dir, segmentFiles(dir)[0]!);
  const size = statSync(path).size;
  // Flip the last record's last byte: its checksum no longer matches.
  const bytes = execFileSync('tail', ['-c', '1', path]);
  truncateSync(path, size - 1);
  appendFileSync(path, Buffer.from([bytes[0]! ^ 0xff]));
  appendFileSync(path, 'garbage that is not a record at all');

  const reopened = await open(t, { dir });
  assert.equal(reopened.repairs[0]?.reason, 'checksum');
  const read = await reopened.read('c', 0);
  assert.deepEqual(
    read.messages.map((m) => m.data),
    ['m1', 'm2'],
  );
  assert.equal(read.headSeq, 2);
  const next = await reopened.publish('c', 'm3 again');
  assert.equal(next.seq, 3, 'the dropped record was never answered, so its position is given again');
});

test('the data directory stays within the total plus one segment however much is pushed through it', async (t) => {
  const dir = tempDataDir('bounded');
  const maxTotalBytes = 64 * 1024;
  const segmentBytes = 8 * 1024;
  const broker = await open(t, { dir, maxTotalBytes, segmentBytes, history: { maxMessages: 50 } });
  let largest = 0;
  const payload = 'p'.repeat(200);
  // Ten times the cap, over many channels, some busy and some not.
  for (let i = 0; i < 2_600; i++) {
    await broker.publish(i % 5 === 0 ? `busy${i % 3}` : `ch${i % 97}`, payload);
    if (i % 50 === 0) largest = Math.max(largest, dirBytes(dir));
  }
  await new Promise((resolve) => setTimeout(resolve, 100));
  largest = Math.max(largest, dirBytes(dir));
  assert.ok(largest <= maxTotalBytes + 2 * segmentBytes, `the directory peaked at ${largest} bytes`);
  assert.equal(broker.diskBytes, dirBytes(dir), 'the broker knows what is on disk');
  // What is still retained survives a restart.
  const before = await broker.read('busy0', 0);
  await broker.close();
  const again = await open(t, { dir, maxTotalBytes, segmentBytes, history: { maxMessages: 50 } });
  const after = await again.read('busy0', 0);
  assert.deepEqual(
    after.messages.map((m) => m.id),
    before.messages.map((m) => m.id),
  );
  assert.equal(after.headSeq, before.headSeq);
});

test('channels whose messages all expired are forgotten: nothing left on disk, and a new epoch if they come ' +
  'back', async (t) => {
  const dir = tempDataDir('forget');
  let now = Date.now();
  const clock = { now: () => now };
  const broker = await open(t, { dir, clock, segmentBytes: 1024, history: { maxAgeMs: 1_000 } });
  const old = await broker.publish('gone', 'x'.repeat(300));
  for (let i = 0; i < 10; i++) await broker.publish('gone', 'x'.repeat(300));
  now += 5_000;
  broker.sweep(() => false);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(broker.channelCount, 0);
  assert.ok(dirBytes(dir) <= 1024 + 400, `only the segment being written is left (${dirBytes(dir)} bytes)`);
  const back = await broker.publish('gone', 'back');
  assert.notEqual(back.epoch, old.epoch);
  assert.equal(back.seq, 1);
});

test('while the disk is full publishes fail with KOMETA_ERR_STORE_WRITE, nothing half-written is kept, and it ' +
  'recovers when space returns', async (t) => {
  const mountPoint = tempDataDir('tmpfs');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mountPoint], { stdio: 'pipe' });
  } catch (error) {
    t.skip(`cannot mount a small tmpfs here (needs root): ${(error as Error).message.split('\n')[0]}`);
    return;
  }
  t.after(() => execFileSync('umount', ['-l', mountPoint]));
  const dir = join(mountPoint, 'data');
  const broker = await open(t, { dir });
  const delivered: number[] = [];
  broker.setListener((m) => delivered.push(m.seq));
  await broker.publish('c', 'before');
  // Fill what is left of the file system.
  try {
    writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(128 * 1024));
  } catch {
    // ENOSPC once it is full: that is the point.
  }
  const outcomes: string[] = [];
  for (let i = 0; i < 100; i++) {
    try {
      await broker.publish('c', 'y'.repeat(1000));
      outcomes.push('stored');
    } catch (error) {
      assert.ok(error instanceof KometaError);
      assert.equal(error.code, 'KOMETA_ERR_STORE_WRITE');
      assert.equal(error.status, 503);
      assert.match(error.message, /ENOSPC/);
      outcomes.push('refused');
      break;
    }
  }
  assert.equal(outcomes.at(-1), 'refused', 'the disk filled up');
  assert.equal(broker.health().ok, false);
  const stored = outcomes.filter((o) => o === 'stored').length;
  assert.deepEqual(
    delivered,
    Array.from({ length: 1 + stored }, (_, i) => i + 1),
    'only stored messages went out',
  );

  execFileSync('rm', [join(mountPoint, 'filler')]);
  const recovered = await broker.publish('c', 'after');
  assert.equal(recovered.seq, stored + 2, 'numbering continues without a hole');
  assert.equal(broker.health().ok, true);
  await broker.close();
  const reopened = await open(t, { dir });
  const read = await reopened.read('c', 0);
  assert.deepEqual(
    read.messages.map((m) => m.seq),
    Array.from({ length: stored + 2 }, (_, i) => i + 1),
  );
  assert.equal(read.messages.at(-1)!.data, 'after');
});

test('a data directory that cannot be used is refused at open with a one-line reason', async (t) => {
  const parent = tempDataDir('unusable');
  const file = join(parent, 'a-file');
  writeFileSync(file, 'not a directory');
  await assert.rejects(
    DurableBroker.open({ dir: join(file, 'data') }),
    (error: Error) => error instanceof DataDirError && !error.message.includes('\n'),
  );

  const readOnly = tempDataDir('ro');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', readOnly], { stdio: 'pipe' });
  } catch (error) {
    t.diagnostic(
      `read-only case not run: cannot mount a read-only tmpfs here (needs root): ` +
        `${(error as Error).message.split('\n')[0]}`,
    );
    return;
  }
  t.after(() => execFileSync('umount', ['-l', readOnly]));
  await assert.rejects(DurableBroker.open({ dir: join(readOnly, 'data') }), (error: Error) => {
    assert.ok(error instanceof DataDirError, String(error));
    assert.match(error.message, /EROFS/);
    return !error.message.includes('\n');
  });
});

test('one process per data directory: a second open is refused while the first holds it', async (t) => {
  const dir = tempDataDir('lock');
  await open(t, { dir });
  await assert.rejects(DurableBroker.open({ dir }), /in use by another kometa process/);
});

test('cut anywhere (a crash at any byte of the last writes), the store opens and keeps exactly the records before ' +
  'the cut', async (t) => {
  const source = tempDataDir('cut-source');
  const broker = await DurableBroker.open({ dir: source });
  const sent: Message[] = [];
  for (let i = 0; i < 60; i++)
    sent.push(
      await broker.publish(`c${i % 3}`, `message ${i} ${'é'.repeat(i % 7)}`, i % 4 === 0 ? { event: 'e' } : {}),
    );
  await broker.close();
  const [file] = segmentFiles(source);
  const whole = readFileSync(join(source, file!));
  // Where each record ends: the store must keep the ones that end at or before the cut.
  const ends: number[] = [];
  for (let offset = 0; offset < whole.length;) {
    offset += 8 + whole.readUInt32LE(offset);
    ends.push(offset);
  }
  assert.equal(ends.length, 60);
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 25; round++) {
    const cut = Math.floor(ends[39]! + random() * (whole.length - ends[39]!));
    const dir = tempDataDir('cut');
    writeFileSync(join(dir, file!), whole.subarray(0, cut));
    writeFileSync(join(dir, 'kometa.json'), readFileSync(join(source, 'kometa.json')));
    const reopened = await DurableBroker.open({ dir });
    const kept = ends.filter((end) => end <= cut).length;
    const got: string[] = [];
    for (let c = 0; c < 3; c++) got.push(...(await reopened.read(`c${c}`, 0)).messages.map((m) => m.id));
    assert.deepEqual(
      got.sort(),
      sent
        .slice(0, kept)
        .map((m) => m.id)
        .sort(),
      `cut at byte ${cut}`,
    );
    assert.equal(reopened.repairs.length, ends.includes(cut) ? 0 : 1);
    const next = await reopened.publish('c0', 'after the cut');
    assert.equal(next.seq, sent.slice(0, kept).filter((m) => m.channel === 'c0').length + 1);
    await reopened.close();
  }
  t.diagnostic('25 cuts between the 40th record and the end');
});
