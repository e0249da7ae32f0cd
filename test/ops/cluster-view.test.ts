import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import type { ClusterSnapshot } from '../../src/ops/stats-types.js';
import { launchBrowser } from '../browser/helpers.js';
import { startOwnCluster } from '../helpers/redis-cluster.js';
import { type KometaProcess, startKometa, startOwnRedis } from '../helpers/redis.js';

const TOKEN = 'cluster-secret';
const shots = mkdtempSync(path.join(tmpdir(), 'kometa-cluster-view-'));

/** GET /_kometa/api/cluster on a connection of its own: under --workers, successive asks reach different workers. */
function clusterOf(url: string): Promise<ClusterSnapshot> {
  return new Promise((resolve, reject) => {
    const headers = { Authorization: `Bearer ${TOKEN}` };
    const req = request(`${url}/_kometa/api/cluster`, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode === 200) resolve(JSON.parse(body) as ClusterSnapshot);
        else reject(new Error(`${res.statusCode}: ${body}`));
      });
    });
    req.on('error', reject);
    // A connection the primary handed to a worker as it was being killed is answered by nobody: give up on it.
    req.setTimeout(5000, () => req.destroy(new Error('no answer within 5 s')));
    req.end();
  });
}

/** Ask until `ok` holds for an answer; the last answer is in the error otherwise. */
async function until(url: string, ok: (s: ClusterSnapshot) => boolean, timeoutMs: number): Promise<ClusterSnapshot> {
  const deadline = Date.now() + timeoutMs;
  let last: ClusterSnapshot | undefined;
  for (;;) {
    try {
      last = await clusterOf(url);
      if (ok(last)) return last;
    } catch (error) {
      // Around a killed worker a connection may be reset or left unanswered; ask again until the deadline.
      if (Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms; last answer: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The PIDs of a process's children (the workers of a --workers primary). */
function childrenOf(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number).sort((a, b) => a - b);
}

const upPids = (list: ClusterSnapshot['workers']) =>
  (list ?? []).filter((m) => m.state === 'up').map((m) => m.pid).sort((a, b) => a - b);

/** kometa serve, the dashboard token, on `store` (`--redis <url>` or `--redis-cluster <seeds>`); killed after. */
async function startNode(t: After, store: string[], extra: string[] = []): Promise<KometaProcess> {
  const node = await startKometa([...store, '--admin-token', TOKEN, '--publish-rate', '0', ...extra]);
  t.after(() => node.kill('SIGKILL'));
  return node;
}

type After = { after(fn: () => Promise<void> | void): void };

const threeWorkers = '--workers 3: the dashboard lists the three workers with PIDs (API, page); one killed is down';
// Generous limits: three workers, a replacement worker and Chromium start on a machine that may be busy.
test(threeWorkers, { timeout: 300_000 }, async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const hub = await startNode(t, ['--redis', redis.url], ['--workers', '3']);
  const workers = childrenOf(hub.pid);
  assert.equal(workers.length, 3);

  // Every worker answers with all three (each ask is a new connection, so they come from different workers).
  const answers = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const snapshot = await until(hub.url, (s) => upPids(s.workers).length === 3, 15_000);
    assert.deepEqual(upPids(snapshot.workers), workers);
    assert.deepEqual(upPids(snapshot.nodes), workers, 'each worker is also a node of the Redis');
    assert.equal(snapshot.totals.up, 3);
    assert.ok(workers.includes(Number(snapshot.self.split(':').at(-1))));
    answers.add(snapshot.self);
  }
  assert.ok(answers.size >= 2, `answers came from ${answers.size} worker(s)`);

  const browser = await launchBrowser(t);
  const context = await browser.newContext({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(String(error)));
  await page.goto(`${hub.url}/_kometa/?token=${TOKEN}`);
  const upRows = `document.querySelectorAll('#cluster tbody tr[data-state="up"]').length === 3`;
  await page.waitForFunction(upRows, undefined, { timeout: 30_000 });
  const pidsShown = `[...document.querySelectorAll('#cluster tbody tr')].map((r) => Number(r.dataset.pid))`;
  const shown = (await page.evaluate(pidsShown)) as number[];
  assert.deepEqual([...shown].sort((a, b) => a - b), workers);
  assert.match(await page.textContent('#cluster-totals') ?? '', /^3 up · /);
  await page.locator('#cluster-card').screenshot({ path: path.join(shots, 'cluster-workers.png') });

  // A worker killed: the primary sees it exit and lists it down; its replacement comes up.
  const victim = workers[1]!;
  process.kill(victim, 'SIGKILL');
  const after = await until(
    hub.url,
    (s) => (s.workers ?? []).some((m) => m.pid === victim && m.state === 'down') && upPids(s.workers).length === 3,
    60_000,
  );
  assert.ok(!upPids(after.workers).includes(victim));
  const victimDown = `document.querySelector('#cluster tbody tr[data-pid="${victim}"]')?.dataset.state === 'down'`;
  await page.waitForFunction(victimDown, undefined, { timeout: 30_000 });
  await page.locator('#cluster-card').screenshot({ path: path.join(shots, 'cluster-worker-down.png') });
  assert.deepEqual(errors, []);
  t.diagnostic(`screenshots in ${shots}`);
});

const twoNodes = 'two nodes on one Redis: each dashboard lists both; one SIGKILLed shows down in the documented time';
test(twoNodes, { timeout: 90_000 }, async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const a = await startNode(t, ['--redis', redis.url]);
  const b = await startNode(t, ['--redis', redis.url]);
  const both = [a.pid, b.pid].sort((x, y) => x - y);
  for (const node of [a, b]) {
    const snapshot = await until(node.url, (s) => upPids(s.nodes).length === 2, 15_000);
    assert.deepEqual(upPids(snapshot.nodes), both);
    assert.equal(snapshot.workers, undefined, 'a single process has no workers list');
    assert.equal(snapshot.nodes!.find((m) => m.self)?.pid, node.pid);
    assert.equal(snapshot.totals.up, 2);
  }

  // Documented: a node silent for three beats (6 s by default) is shown down, and the others see it by their next beat.
  const seen = await clusterOf(a.url);
  const limitMs = (seen.downAfterSeconds + seen.beatSeconds) * 1000;
  await b.kill('SIGKILL');
  const killedAt = Date.now();
  const down = await until(a.url, (s) => s.nodes?.find((m) => m.pid === b.pid)?.state === 'down', 30_000);
  const tookMs = Date.now() - killedAt;
  t.diagnostic(`shown down after ${tookMs} ms (documented: within ${limitMs} ms)`);
  assert.deepEqual(upPids(down.nodes), [a.pid]);
  assert.equal(down.totals.up, 1);
  assert.equal(down.totals.down, 1);
});

test('a node that stops cleanly leaves the list at once', { timeout: 60_000 }, async (t) => {
  const redis = await startOwnRedis({ persistent: false });
  t.after(() => redis.stop());
  const a = await startNode(t, ['--redis', redis.url]);
  const b = await startNode(t, ['--redis', redis.url]);
  await until(a.url, (s) => upPids(s.nodes).length === 2, 15_000);
  await b.kill('SIGTERM');
  const after = await until(a.url, (s) => (s.nodes ?? []).every((m) => m.pid !== b.pid), 10_000);
  assert.deepEqual(upPids(after.nodes), [a.pid]);
  assert.equal(after.totals.down, 0);
});

test('two nodes on a 3-master Redis Cluster: each dashboard lists both', { timeout: 90_000 }, async (t) => {
  const cluster = await startOwnCluster({ masters: 3, replicas: 0 });
  t.after(() => cluster.stop());
  const a = await startNode(t, ['--redis-cluster', cluster.seeds]);
  const b = await startNode(t, ['--redis-cluster', cluster.seeds]);
  for (const node of [a, b]) {
    const snapshot = await until(node.url, (s) => upPids(s.nodes).length === 2, 15_000);
    assert.deepEqual(upPids(snapshot.nodes), [a.pid, b.pid].sort((x, y) => x - y));
  }
  await b.kill('SIGKILL');
  const down = await until(a.url, (s) => s.nodes?.find((m) => m.pid === b.pid)?.state === 'down', 30_000);
  assert.equal(down.totals.up, 1);
});
