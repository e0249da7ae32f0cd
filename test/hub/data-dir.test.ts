import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { tempDataDir } from '../helpers/data-dir.js';
import { httpRequest, waitFor } from '../helpers/hub.js';
import { type KometaProcess, seqOf, sseCollector, startKometa } from '../helpers/redis.js';

function dirBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) total += statSync(join(dir, name), { throwIfNoEntry: false })?.size ?? 0;
  return total;
}

function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

async function post(
  url: string,
  channel: string,
  data: string,
): Promise<{ status: number; code?: string; id?: string }> {
  const res = await httpRequest(`${url}/pub/${channel}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain' },
    body: data,
  });
  const body = res.json<{ code?: string; id?: string }>();
  return { status: res.status, code: body.code, id: body.id };
}

test(
  'a soak of ten times the cap through many channels: the data dir stays within the cap plus one segment, memory ' +
    'stays bounded',
  { timeout: 180_000 },
  async (t) => {
    const dir = tempDataDir('soak');
    const cap = 2 * 1024 * 1024;
    const segment = 64 * 1024; // 1/32 of the cap, at least 64 KiB
    const hub: KometaProcess = await startKometa([
      '--data-dir',
      dir,
      '--history-total-bytes',
      String(cap),
      '--publish-rate',
      '0',
      '--log-level',
      'warn',
    ]);
    t.after(() => hub.kill());
    const payload = 'd'.repeat(2_000);
    const total = Math.ceil((10 * cap) / payload.length);
    let largestDir = 0;
    let largestRss = 0;
    const sampler = setInterval(() => {
      largestDir = Math.max(largestDir, dirBytes(dir));
      largestRss = Math.max(largestRss, rssBytes(hub.pid));
    }, 20);
    t.after(() => clearInterval(sampler));
    const startRss = rssBytes(hub.pid);
    let sent = 0;
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = worker; i < total; i += 8) {
          const answer = await post(hub.url, `soak${i % 300}`, payload);
          assert.equal(answer.status, 201);
          sent++;
        }
      }),
    );
    clearInterval(sampler);
    largestDir = Math.max(largestDir, dirBytes(dir));
    assert.equal(sent, total);
    t.diagnostic(
      `pushed ${((total * payload.length) / 1048576).toFixed(1)} MiB; data dir peaked at ` +
        `${(largestDir / 1048576).toFixed(2)} MiB (cap ${cap / 1048576} MiB); RSS ` +
        `${(startRss / 1048576).toFixed(0)} → peak ${(largestRss / 1048576).toFixed(0)} MiB`,
    );
    // Segments, kometa.json and LOCK: the small files are well inside one segment.
    assert.ok(largestDir <= cap + 2 * segment, `data dir peaked at ${largestDir} bytes`);
    assert.ok(
      largestRss - startRss < 150 * 1024 * 1024,
      `RSS grew by ${largestRss - startRss} bytes for a ${cap}-byte history`,
    );
  },
);

test(
  'a full disk: publishes get 503 KOMETA_ERR_STORE_WRITE, never a 201 for what was not stored; subscribers stay; it ' +
    'recovers by itself',
  { timeout: 60_000 },
  async (t) => {
    const mountPoint = tempDataDir('full');
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint], { stdio: 'pipe' });
    } catch (error) {
      t.skip(`cannot mount a small tmpfs here (needs root): ${(error as Error).message.split('\n')[0]}`);
      return;
    }
    t.after(() => execFileSync('umount', ['-l', mountPoint]));
    const hub = await startKometa([
      '--data-dir',
      join(mountPoint, 'data'),
      '--publish-rate',
      '0',
      '--log-level',
      'warn',
    ]);
    t.after(() => hub.kill());
    const sse = sseCollector(`${hub.url}/sub/full`);
    t.after(async () => sse.close());
    await waitFor(() => sse.opens() === 1, 5000, 'the subscriber');
    assert.equal((await post(hub.url, 'full', 'first')).status, 201);

    try {
      writeFileSync(join(mountPoint, 'filler'), Buffer.alloc(512 * 1024));
    } catch {
      // ENOSPC: the file system is full now, which is the point.
    }
    const stored: string[] = [];
    let refusal: { status: number; code?: string } | undefined;
    for (let i = 0; i < 200 && refusal === undefined; i++) {
      const answer = await post(hub.url, 'full', `m${i} ${'x'.repeat(1_000)}`);
      if (answer.status === 201) stored.push(answer.id!);
      else refusal = answer;
    }
    assert.deepEqual(refusal, { status: 503, code: 'KOMETA_ERR_STORE_WRITE', id: undefined });
    const health = await httpRequest(`${hub.url}/healthz`);
    assert.equal(health.status, 503);
    assert.match(health.body, /ENOSPC/);

    rmSync(join(mountPoint, 'filler'));
    const after = await post(hub.url, 'full', 'after');
    assert.equal(after.status, 201);
    assert.equal(seqOf(after.id!), stored.length + 2, 'the sequence goes on with no hole');
    await waitFor(() => sse.received.length === stored.length + 2, 5000, 'every stored message at the subscriber');
    assert.equal(sse.opens(), 1, 'the subscriber stayed connected throughout');
    assert.equal(sse.gaps.length, 0);
    assert.deepEqual(
      sse.received.map((m) => m.id),
      [...sse.received.slice(0, 1).map((m) => m.id), ...stored, after.id],
    );
    assert.equal((await httpRequest(`${hub.url}/healthz`)).status, 200);
  },
);

test('/metrics reports the data directory: its bytes on disk and its segments', { timeout: 30_000 }, async (t) => {
  const dir = tempDataDir('metrics');
  const hub = await startKometa(['--data-dir', dir, '--admin-token', 'ops-secret', '--log-level', 'warn']);
  t.after(() => hub.kill());
  for (let i = 0; i < 20; i++) assert.equal((await post(hub.url, `m${i % 4}`, 'x'.repeat(100))).status, 201);
  const metrics = await httpRequest(`${hub.url}/metrics`, { headers: { Authorization: 'Bearer ops-secret' } });
  assert.equal(metrics.status, 200);
  const disk = Number(/^kometa_store_disk_bytes (\d+)$/m.exec(metrics.body)?.[1]);
  const segments = Number(/^kometa_store_segments (\d+)$/m.exec(metrics.body)?.[1]);
  const files = readdirSync(dir).filter((name) => name.startsWith('seg-'));
  assert.equal(segments, files.length);
  assert.equal(
    disk,
    files.reduce((sum, name) => sum + statSync(join(dir, name)).size, 0),
  );
  assert.ok(disk > 20 * 100);
});
