// Issue 13: choose the storage with numbers.
//
//   node bench/storage/compare.mjs                 # the comparison, 3 rounds, medians
//   node bench/storage/compare.mjs --startup       # DurableBroker.open on ~256 MiB / 100,000 channels
//
// Every measurement runs in a child process of its own (one engine, one channel count),
// rounds interleave the engines so a noisy neighbour hits them all alike, and the
// MemoryBroker baseline runs in every round.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';

const here = dirname(fileURLToPath(import.meta.url));
const ENGINES = ['memory', 'kometa', 'sqlite', 'lmdb', 'level'];
const LABELS = {
  memory: 'MemoryBroker (baseline, no disk)',
  kometa: 'kometa DurableBroker (log + group commit)',
  sqlite: 'better-sqlite3 12 (WAL, synchronous=FULL)',
  lmdb: 'lmdb (async txn, await flushed)',
  level: 'classic-level (batch, sync: true)',
};
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
};
const MESSAGES = Number(arg('--messages', 50_000));
const INFLIGHT = Number(arg('--inflight', 64));
const REPS = Number(arg('--reps', 3));
const CHANNEL_COUNTS = arg('--channels', '10,1000').split(',').map(Number);
const DATA_BYTES = 200;

/** 200 bytes of incompressible text (random base64url), so no engine gains by compressing (LevelDB uses Snappy). */
function payload() {
  return randomBytes(150).toString('base64url');
}

function diskUsage(dir) {
  let apparent = 0;
  let allocated = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const st = statSync(join(entry.parentPath ?? entry.path, entry.name));
    apparent += st.size;
    allocated += st.blocks * 512;
  }
  return { apparent, allocated };
}

const median = (values) => {
  const sorted = values.filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
  return sorted.length === 0 ? null : sorted[Math.floor(sorted.length / 2)];
};

/** One engine, one channel count, in this process; prints one JSON line. */
async function runOne(engine, channelCount) {
  const adapter = await import(`./adapters/${engine}.mjs`);
  const dir = mkdtempSync(join(tmpdir(), `kometa-storage-${engine}-`));
  const channels = Array.from({ length: channelCount }, (_, i) => `bench-${i}`);
  // A distinct payload for every message: a repeating pool would let LevelDB's Snappy compress across messages.
  const data = Array.from({ length: MESSAGES }, payload);
  try {
    const store = await adapter.open(dir);
    // The noise floor of this run: the same monitor for 1 s with nothing to do.
    const idle = monitorEventLoopDelay({ resolution: 1 });
    idle.enable();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    idle.disable();
    const delay = monitorEventLoopDelay({ resolution: 1 });
    let next = 0;
    let stored = 0;
    const worker = async () => {
      while (next < MESSAGES) {
        const i = next++;
        await store.publish(channels[i % channelCount], data[i % data.length]);
        stored++;
      }
    };
    delay.enable();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: INFLIGHT }, worker));
    const publishMs = performance.now() - t0;
    delay.disable();
    await store.close();
    if (stored !== MESSAGES) throw new Error(`stored ${stored} of ${MESSAGES}`);
    const disk = diskUsage(dir);
    let readMs = null;
    let readBack = null;
    if (engine !== 'memory') {
      const r0 = performance.now();
      readBack = await adapter.readAll(dir, channels);
      readMs = performance.now() - r0;
      if (readBack !== MESSAGES) throw new Error(`read back ${readBack} of ${MESSAGES}`);
    }
    return {
      engine,
      channels: channelCount,
      messages: MESSAGES,
      publishesPerSec: MESSAGES / (publishMs / 1000),
      loopDelayP99Ms: delay.percentile(99) / 1e6,
      loopDelayMaxMs: delay.max / 1e6,
      loopDelayP50Ms: delay.percentile(50) / 1e6,
      loopDelaySamples: delay.count,
      idleLoopDelayP99Ms: idle.percentile(99) / 1e6,
      diskBytesPerMsg: engine === 'memory' ? null : disk.allocated / MESSAGES,
      diskApparentBytesPerMsg: engine === 'memory' ? null : disk.apparent / MESSAGES,
      reopenReadAllMs: readMs,
      native: adapter.native,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Both modes write one file: bench/results/storage.json, each its own key, keeping the other's. */
function save(part) {
  const out = arg('--out', join(here, '..', 'results', 'storage.json'));
  let previous = {};
  try {
    previous = JSON.parse(readFileSync(out, 'utf8'));
  } catch {
    // first run
  }
  writeFileSync(out, JSON.stringify({ ...previous, ...part }, null, 2) + '\n');
}

function adapterLines(engine) {
  const text = readFileSync(join(here, 'adapters', `${engine}.mjs`), 'utf8');
  return text.split('\n').filter((line) => line.trim() !== '' && !line.trim().startsWith('//')).length;
}

function child(args) {
  const out = spawnSync(process.execPath, [fileURLToPath(import.meta.url), ...args], {
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
  const last = out.stdout.trim().split('\n').at(-1);
  if (out.status !== 0 || !last?.startsWith('{')) {
    return {
      error: `exit ${out.status} signal ${out.signal}: ` +
        `${(out.stderr || out.stdout).trim().split('\n').slice(-3).join(' | ')}`,
    };
  }
  return JSON.parse(last);
}

async function compare() {
  const runs = [];
  for (let rep = 1; rep <= REPS; rep++) {
    for (const channels of CHANNEL_COUNTS) {
      for (const engine of ENGINES) {
        const result = {
          rep,
          ...child(['--one', engine, String(channels), '--messages', String(MESSAGES), '--inflight', String(INFLIGHT)]),
        };
        result.engine ??= engine;
        result.channels ??= channels;
        runs.push(result);
        console.error(JSON.stringify(result));
      }
    }
  }
  const summary = [];
  for (const engine of ENGINES) {
    const row = { engine, label: LABELS[engine], adapterLines: adapterLines(engine) };
    for (const channels of CHANNEL_COUNTS) {
      const mine = runs.filter((r) => r.engine === engine && r.channels === channels && !r.error);
      const errors = runs.filter((r) => r.engine === engine && r.channels === channels && r.error).map((r) => r.error);
      row[channels] = {
        okRuns: mine.length,
        errors,
        publishesPerSec: median(mine.map((r) => r.publishesPerSec)),
        loopDelayP99Ms: median(mine.map((r) => r.loopDelayP99Ms)),
        loopDelayMaxMs: median(mine.map((r) => r.loopDelayMaxMs)),
        idleLoopDelayP99Ms: median(mine.map((r) => r.idleLoopDelayP99Ms)),
        diskBytesPerMsg: median(mine.map((r) => r.diskBytesPerMsg)),
        diskApparentBytesPerMsg: median(mine.map((r) => r.diskApparentBytesPerMsg)),
        reopenReadAllMs: median(mine.map((r) => r.reopenReadAllMs)),
      };
      row.native = mine[0]?.native;
    }
    summary.push(row);
  }
  const base = Object.fromEntries(
    CHANNEL_COUNTS.map((c) => [c, summary.find((r) => r.engine === 'memory')[c].publishesPerSec]),
  );
  for (const row of summary)
    for (const c of CHANNEL_COUNTS)
      row[c].ratioToMemory = row[c].publishesPerSec === null ? null : row[c].publishesPerSec / base[c];
  const result = {
    node: process.version,
    messages: MESSAGES,
    inflight: INFLIGHT,
    dataBytes: DATA_BYTES,
    reps: REPS,
    tmpdir: tmpdir(),
    summary,
    runs,
  };
  save({ comparison: result });
  console.log(table(result));
}

function table({ summary }) {
  const f = (v, digits = 0) =>
    v === null || v === undefined
      ? 'n/a'
      : v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
  const lines = [
    '| engine | publishes/s durable, 10 ch (× memory) | publishes/s durable, 1,000 ch (× memory) | loop delay p99 / ' +
      'max while publishing, 10 ch / 1,000 ch (ms) | disk bytes per message (allocated; apparent) | reopen + read ' +
      'all 50k (ms), 10 ch / 1,000 ch | native binary | adapter lines |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const row of summary) {
    const a = row[10] ?? {};
    const b = row[1000] ?? {};
    lines.push(
      `| ${row.label} | ${f(a.publishesPerSec)} (${f(a.ratioToMemory, 3)}) | ${f(b.publishesPerSec)} ` +
        `(${f(b.ratioToMemory, 3)}) | ${f(a.loopDelayP99Ms, 1)} / ${f(a.loopDelayMaxMs, 1)} ; ` +
        `${f(b.loopDelayP99Ms, 1)} / ${f(b.loopDelayMaxMs, 1)} | ${f(a.diskBytesPerMsg)}; ` +
        `${f(a.diskApparentBytesPerMsg)} | ${f(a.reopenReadAllMs)} / ${f(b.reopenReadAllMs)} | ` +
        `${row.native === undefined ? 'n/a' : row.native ? 'yes' : 'no'} | ${row.adapterLines} |`,
    );
  }
  return lines.join('\n');
}

// ---- DurableBroker start-up on a large data dir ---------------------------

const STARTUP = {
  channels: 100_000,
  targetBytes: 256 * 1024 * 1024,
  history: { maxMessages: 1000, maxBytes: 1 << 20 },
};

async function startupMake(dir) {
  const { DurableBroker } = await import('../../dist/src/brokers/durable.js');
  // Written once, with a 1 s fsync interval to make it quickly; open is what is timed.
  const broker = await DurableBroker.open({
    dir,
    history: STARTUP.history,
    maxTotalBytes: 2 ** 40,
    fsyncIntervalMs: 1000,
  });
  let i = 0;
  const data = Array.from({ length: 1000 }, (_, n) => payload(n));
  const worker = async () => {
    while (broker.diskBytes < STARTUP.targetBytes) {
      const n = i++;
      await broker.publish(`user-${n % STARTUP.channels}`, data[n % data.length]);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 1024 }, worker));
  await broker.close();
  return { published: i, makeMs: performance.now() - t0, disk: diskUsage(dir) };
}

async function startupOpen(dir) {
  const { DurableBroker } = await import('../../dist/src/brokers/durable.js');
  global.gc?.();
  const rss0 = process.memoryUsage().rss;
  const t0 = performance.now();
  const broker = await DurableBroker.open({ dir, history: STARTUP.history, maxTotalBytes: 2 ** 40 });
  const openMs = performance.now() - t0;
  const channels = broker.channelCount;
  const mem = process.memoryUsage();
  let retained = 0;
  for (let c = 0; c < STARTUP.channels; c++) retained += (await broker.read(`user-${c}`, 0)).messages.length;
  await broker.close();
  return { openMs, channels, retained, rssMiB: (mem.rss - rss0) / 2 ** 20, heapUsedMiB: mem.heapUsed / 2 ** 20 };
}

async function startup() {
  const dir = mkdtempSync(join(tmpdir(), 'kometa-startup-'));
  try {
    const made = child(['--startup-make', dir]);
    console.error(JSON.stringify(made));
    const opens = [];
    for (let rep = 1; rep <= REPS; rep++) {
      const opened = child(['--startup-open', dir]);
      opened.recordsPerSec = opened.openMs ? made.published / (opened.openMs / 1000) : null;
      opens.push({ rep, ...opened });
      console.error(JSON.stringify(opens.at(-1)));
    }
    const result = {
      node: process.version,
      ...made,
      diskMiB: made.disk.apparent / 2 ** 20,
      opens,
      median: { openMs: median(opens.map((o) => o.openMs)), recordsPerSec: median(opens.map((o) => o.recordsPerSec)) },
    };
    save({ startup: result });
    console.log(JSON.stringify(result.median));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes('--one')) {
  const i = process.argv.indexOf('--one');
  console.log(JSON.stringify(await runOne(process.argv[i + 1], Number(process.argv[i + 2]))));
} else if (process.argv.includes('--startup-make')) {
  console.log(JSON.stringify(await startupMake(arg('--startup-make'))));
} else if (process.argv.includes('--startup-open')) {
  console.log(JSON.stringify(await startupOpen(arg('--startup-open'))));
} else if (process.argv.includes('--startup')) {
  await startup();
} else {
  await compare();
}
