/*
 * A hub restart under 10,000 plain SSE subscribers that behave like
 * EventSource: they obey the `retry:` hint, reconnect after it with
 * Last-Event-ID, and take a 200 + kometa-error as "try again after retry".
 *
 *   npm run bench -- herd [--subscribers 10000] [--quick]      (bench/scenarios/herd.ts)
 *
 * Twice, in one run: with today's fixed hint (--retry-jitter 0 --admit-rate 0)
 * and with the herd controls at their defaults (--retry-jitter 0.5
 * --admit-rate 2000). Each time: `kometa serve` on its data directory, the
 * subscribers spread over several load processes and source addresses
 * (127.0.x.y), two messages per channel, SIGTERM (the drain hands every
 * stream its hint), a new process on the same port and directory at once,
 * two more messages per channel published as soon as it listens. Reported:
 * when each subscriber was subscribed again (a histogram from the moment the
 * new process listened),
 * refusals, the longest /healthz answer during the storm (a stall shows
 * there), the new process's CPU and peak memory, and whether anyone lost or
 * repeated a message. docs/benchmarks.md has the numbers.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer, stopProcess, waitForOutput } from './lib/procs.js';
import { sourceAddress } from './lib/protocol.js';

const HERE = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const now = () => Number(process.hrtime.bigint() / 1000n) / 1000;

// ---------------------------------------------------------------- the load process

interface Start {
  type: 'start';
  port: number;
  count: number;
  firstIndex: number;
  channels: number;
  address: string;
}

interface Subscriber {
  readonly channel: string;
  lastId: string | undefined;
  retryMs: number;
  seqs: number[];
  /** When an id: first arrived on a connection opened after the restart (hrtime ms). */
  backAt: number | undefined;
  attempts: number;
}

interface LoaderState {
  port: number;
  address: string;
  restartAt: number;
  stopping: boolean;
  readonly counts: { busy: number; refused: number; errors: number };
}

/** Take the complete SSE events out of `text` (what is left is returned), after de-chunking. */
function takeEvents(text: string, onEvent: (fields: string[]) => void): string {
  let rest = text;
  let cut;
  while ((cut = rest.indexOf('\n\n')) !== -1) {
    onEvent(rest.slice(0, cut).split('\n'));
    rest = rest.slice(cut + 2);
  }
  return rest;
}

/** The payloads of the complete chunks at the start of `raw`, and what is left of it. */
function dechunk(raw: Buffer): { text: string; rest: Buffer } {
  let text = '';
  let rest = raw;
  for (;;) {
    const line = rest.indexOf('\r\n');
    if (line === -1) break;
    const size = parseInt(rest.toString('latin1', 0, line), 16);
    if (rest.length < line + 2 + size + 2) break;
    text += rest.toString('utf8', line + 2, line + 2 + size);
    rest = rest.subarray(line + 2 + size + 2);
  }
  return { text, rest };
}

/** One EventSource-like connection: resume with Last-Event-ID, obey retry:, reconnect after it whatever happened. */
function openSubscriber(sub: Subscriber, state: LoaderState, onFirstId?: () => void): void {
  sub.attempts++;
  const socket = connect({ host: '127.0.0.1', port: state.port, localAddress: state.address });
  const openedAfterRestart = now() > state.restartAt;
  let head = true;
  let raw: Buffer = Buffer.alloc(0);
  let text = '';
  let firstId = onFirstId;
  const onEvent = (fields: string[]) => {
    let data: string | undefined;
    let event: string | undefined;
    for (const field of fields) {
      if (field.startsWith('retry: ')) sub.retryMs = Number(field.slice(7));
      else if (field.startsWith('data: ')) data = field.slice(6);
      else if (field.startsWith('event: ')) event = field.slice(7);
      else if (field.startsWith('id: ')) {
        sub.lastId = field.slice(4);
        if (openedAfterRestart && sub.backAt === undefined) sub.backAt = now();
        firstId?.();
        firstId = undefined;
      }
    }
    if (event === 'kometa-error' && data?.includes('KOMETA_ERR_BUSY') === true) state.counts.busy++;
    if (event === undefined && data !== undefined && data.startsWith('m')) sub.seqs.push(Number(data.slice(1)));
  };
  socket.setNoDelay(true);
  socket.on('connect', () => {
    const resume = sub.lastId === undefined ? '' : `Last-Event-ID: ${sub.lastId}\r\n`;
    socket.write(`GET /sub/${sub.channel} HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n${resume}\r\n`);
  });
  socket.on('data', (data: Buffer) => {
    raw = raw.length === 0 ? data : Buffer.concat([raw, data]);
    if (head) {
      const end = raw.indexOf('\r\n\r\n');
      if (end === -1) return;
      head = false;
      raw = raw.subarray(end + 4);
    }
    const chunks = dechunk(raw);
    raw = chunks.rest;
    text = takeEvents(text + chunks.text, onEvent);
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'ECONNREFUSED') state.counts.refused++;
    else state.counts.errors++;
  });
  // EventSource: whatever ended the connection, wait the reconnection time and open again.
  socket.on('close', () => {
    if (!state.stopping) setTimeout(() => openSubscriber(sub, state), sub.retryMs);
  });
}

function runLoader(): void {
  const subs: Subscriber[] = [];
  const state: LoaderState = {
    port: 0,
    address: '127.0.0.1',
    restartAt: Infinity,
    stopping: false,
    counts: { busy: 0, refused: 0, errors: 0 },
  };
  process.on('message', (message: { type: string } & Partial<Start> & { at?: number }) => {
    if (message.type === 'start') {
      const order = message as Start;
      state.port = order.port;
      state.address = order.address;
      let ready = 0;
      let next = 0;
      const openNext = () => {
        if (next >= order.count) return;
        const index = order.firstIndex + next++;
        const sub: Subscriber = {
          channel: `herd.${index % order.channels}`,
          lastId: undefined,
          retryMs: 3000,
          seqs: [],
          backAt: undefined,
          attempts: 0,
        };
        subs.push(sub);
        openSubscriber(sub, state, () => {
          if (++ready === order.count) process.send!({ type: 'ready' });
          openNext();
        });
      };
      for (let i = 0; i < 100; i++) openNext();
    } else if (message.type === 'restart') {
      state.restartAt = message.at!;
    } else if (message.type === 'report') {
      process.send!({
        type: 'report',
        back: subs.map((s) => (s.backAt === undefined ? -1 : s.backAt - state.restartAt)),
        seqs: subs.map((s) => s.seqs),
        attempts: subs.reduce((n, s) => n + s.attempts, 0),
        ...state.counts,
      });
    } else if (message.type === 'exit') {
      state.stopping = true;
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------- the parent

interface LoaderReport {
  back: number[];
  seqs: number[][];
  attempts: number;
  busy: number;
  refused: number;
  errors: number;
}

async function startServer(port: number, dataDir: string, args: string[]): Promise<ChildProcess> {
  const server = spawnServer(process.execPath, [
    CLI, 'serve', '--port', String(port), '--data-dir', dataDir, '--retry', '2', '--log-level', 'warn', ...args,
  ]);
  await waitForOutput(server, 'listening on', 20_000);
  return server;
}

const agent = new Agent({ keepAlive: true, maxSockets: 16 });

function post(port: number, path: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function healthLatency(port: number): Promise<number> {
  const started = now();
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(now() - started));
    });
    req.setTimeout(30_000, () => req.destroy());
    req.on('error', () => resolve(-1));
    req.end();
  });
}

async function publishRound(port: number, channels: number, seq: number): Promise<void> {
  const all = [];
  for (let c = 0; c < channels; c++) all.push(post(port, `/pub/herd.${c}`, `m${seq}`));
  const statuses = await Promise.all(all);
  const bad = statuses.filter((s) => s !== 201).length;
  if (bad > 0) throw new Error(`${bad} publishes failed`);
}

function ask(loaders: ChildProcess[]): Promise<LoaderReport[]> {
  return Promise.all(
    loaders.map(
      (loader) =>
        new Promise<LoaderReport>((resolve) => {
          loader.once('message', (m: LoaderReport) => resolve(m));
          loader.send({ type: 'report' });
        }),
    ),
  );
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function peakKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface HerdOptions {
  subscribers: number;
  loaders: number;
  channels: number;
}

// eslint-disable-next-line max-lines-per-function -- one scenario, read top to bottom
async function restart(label: string, args: string[], options: HerdOptions, port: number) {
  const dataDir = mkdtempSync(join(tmpdir(), 'kometa-herd-'));
  const log = (line: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${label}: ${line}\n`);
  try {
    let server = await startServer(port, dataDir, args);
    const per = Math.ceil(options.subscribers / options.loaders);
    const loaders = Array.from({ length: options.loaders }, () =>
      fork(HERE, ['loader'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    const ready = loaders.map((l) => new Promise<void>((resolve) => l.once('message', () => resolve())));
    loaders.forEach((loader, i) =>
      loader.send({
        type: 'start', port, count: per, firstIndex: i * per, channels: options.channels, address: sourceAddress(i * 7),
      }),
    );
    await Promise.all(ready);
    log(`${per * options.loaders} subscribers in`);
    await publishRound(port, options.channels, 1);
    await publishRound(port, options.channels, 2);
    await sleep(1000);

    const restartAt = now();
    for (const loader of loaders) loader.send({ type: 'restart', at: restartAt });
    await stopProcess(server, 10_000);
    const downMs = now() - restartAt;
    server = await startServer(port, dataDir, args);
    const upMs = now() - restartAt;
    const cpuBefore = cpuSeconds(server.pid!);
    await publishRound(port, options.channels, 3);
    await publishRound(port, options.channels, 4);
    log(`drained in ${downMs.toFixed(0)} ms, listening again at ${upMs.toFixed(0)} ms`);

    let worstHealthMs = 0;
    let reports: LoaderReport[] = [];
    const deadline = now() + 90_000;
    for (;;) {
      const health = await healthLatency(port);
      worstHealthMs = Math.max(worstHealthMs, health);
      reports = await ask(loaders);
      const back = reports.flatMap((r) => r.back);
      const done = back.every((b) => b >= 0) && reports.every((r) => r.seqs.every((s) => s.length >= 4));
      if (done || now() > deadline) break;
      await sleep(100);
    }
    const cpuSec = cpuSeconds(server.pid!) - cpuBefore;
    const peakMiB = peakKiB(server.pid!) / 1024;
    for (const loader of loaders) loader.send({ type: 'exit' });
    await stopProcess(server, 10_000);

    // Counted from when the new process listened: how long the restart itself took depends on the machine.
    const back = reports.flatMap((r) => r.back).filter((b) => b >= 0).map((b) => Math.max(0, b - upMs));
    back.sort((a, b) => a - b);
    const missing = reports.flatMap((r) => r.back).filter((b) => b < 0).length;
    let lost = 0;
    let repeated = 0;
    for (const seqs of reports.flatMap((r) => r.seqs)) {
      const seen = new Set(seqs);
      repeated += seqs.length - seen.size;
      for (let s = 1; s <= 4; s++) if (!seen.has(s)) lost++;
      if (seqs.some((s, i) => i > 0 && s < seqs[i - 1]!)) repeated++;
    }
    const histogram: Record<string, number> = {};
    for (const b of back) {
      const bucket = `${(Math.floor(b / 500) * 0.5).toFixed(1)}s`;
      histogram[bucket] = (histogram[bucket] ?? 0) + 1;
    }
    // Subscriptions taken in the busiest 100 ms: the burst the new process had to absorb.
    const per100 = new Map<number, number>();
    for (const b of back) per100.set(Math.floor(b / 100), (per100.get(Math.floor(b / 100)) ?? 0) + 1);
    return {
      label,
      args: args.join(' '),
      subscribers: per * options.loaders,
      drainMs: Math.round(downMs),
      listeningAgainMs: Math.round(upMs),
      notBack: missing,
      backP50Ms: Math.round(percentile(back, 50)),
      backP90Ms: Math.round(percentile(back, 90)),
      backP99Ms: Math.round(percentile(back, 99)),
      backMaxMs: Math.round(back.at(-1) ?? NaN),
      busiest100ms: Math.max(...per100.values()),
      busyRefusals: reports.reduce((n, r) => n + r.busy, 0),
      connectRefused: reports.reduce((n, r) => n + r.refused, 0),
      connectErrors: reports.reduce((n, r) => n + r.errors, 0),
      worstHealthzMs: Math.round(worstHealthMs),
      serverCpuSec: Math.round(cpuSec * 100) / 100,
      serverPeakMiB: Math.round(peakMiB),
      lost,
      repeated,
      histogram,
    };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export type HerdRow = Awaited<ReturnType<typeof restart>>;
type Row = HerdRow;

/** The two restarts side by side, then when each subscriber came back. */
export function renderHerd(rows: readonly Row[]): string {
  let out = `## Reconnect storm after a restart\n\n`;
  const buckets = [...new Set(rows.flatMap((r) => Object.keys(r.histogram)))];
  buckets.sort((a, b) => parseFloat(a) - parseFloat(b));
  const scale = Math.max(...rows.flatMap((r) => Object.values(r.histogram))) / 50;
  out += '| | ' + rows.map((r) => r.label).join(' | ') + ' |\n|---|' + rows.map(() => '---').join('|') + '|\n';
  const keys = Object.keys(rows[0]!).filter((k) => !['label', 'histogram'].includes(k)) as (keyof Row)[];
  for (const key of keys) out += `| ${key} | ${rows.map((r) => String(r[key])).join(' | ')} |\n`;
  for (const row of rows) {
    out += `\nsubscribed again, by time since the new process listened (${row.label}):\n`;
    for (const bucket of buckets) {
      const n = row.histogram[bucket] ?? 0;
      out += `${bucket.padStart(6)} ${String(n).padStart(6)} ${'#'.repeat(Math.ceil(n / scale))}\n`;
    }
  }
  return out;
}

/** A restart with today's fixed hint, then one with the herd controls at their defaults. */
export async function herdComparison(options: HerdOptions, firstPort: number): Promise<HerdRow[]> {
  return [
    await restart('fixed retry (today)', ['--retry-jitter', '0', '--admit-rate', '0'], options, firstPort),
    await restart('jitter + admission', ['--retry-jitter', '0.5', '--admit-rate', '2000'], options, firstPort + 1),
  ];
}

// The load processes this module forks run it with `loader`; imported by bench/run.js, it only exports.
if (process.argv[2] === 'loader') runLoader();
