/*
 * Server CPU per delivery: SSE over HTTP/2 with TLS against SSE over plain
 * HTTP/1.1, same hub, same messages, one run; and the floors under each.
 * A scenario of `npm run bench` (bench/scenarios/h2.ts):
 *
 *   npm run bench -- h2 [--subscribers 1000] [--repeat 3] [--quick]
 *
 * `kometa serve --memory`, pinned to one core, once per case; the
 * subscribers are held by load processes (node's http2 client, or raw
 * sockets for HTTP/1.1), the publisher posts --rate messages of 100 bytes
 * per second to the one channel they all follow. Server CPU (utime + stime,
 * /proc) over the publishing window divided by the deliveries counted at the
 * subscribers is the figure; its ratio to plain HTTP/1.1 is the one to
 * watch. Cases: plain HTTP/1.1; HTTPS HTTP/1.1; HTTP/2 with one connection
 * per subscriber (many users, one tab each: the costly case, every stream its
 * own TLS session); HTTP/2 with 100 streams per connection (tabs of a few
 * users sharing connections). Floors (bench/servers/tls-floor.ts): Node alone
 * writing the same SSE bytes to the same number of plain sockets, TLS
 * sockets, and HTTP/2 streams (one per session), so what is Node's TLS and
 * HTTP/2 stack and what is kometa's can be told apart. Every case runs once
 * per round, rounds interleaved; the medians are reported.
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnServer, stopProcess, waitForOutput } from './lib/procs.js';
import { sourceAddress } from './lib/protocol.js';

const HERE = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const FLOOR = fileURLToPath(new URL('./servers/tls-floor.js', import.meta.url));

type Mode = 'h1' | 'h1-tls' | 'h2';

interface Start {
  type: 'start';
  mode: Mode;
  port: number;
  count: number;
  perSession: number;
  address: string;
}

/** Counts SSE messages (`data: ` lines) in a byte stream whose chunks may split one. */
function counter(): { feed(text: string): void; readonly n: number } {
  let tail = '';
  let n = 0;
  return {
    feed(text: string) {
      const joined = tail + text;
      let at = joined.indexOf('\ndata: ');
      while (at !== -1) {
        n++;
        at = joined.indexOf('\ndata: ', at + 7);
      }
      tail = joined.slice(-6);
    },
    get n() {
      return n;
    },
  };
}

/**
 * The subscribers' HTTP/2 sessions, 20 opening at a time (1,000 at once
 * overflow a busy server's accept queue). A session closed before all its
 * streams were answered is opened again for the ones that were not.
 */
function openH2Sessions(
  order: Start,
  done: () => void,
  sessions: ClientHttp2Session[],
  counters: { n: number }[],
): void {
  const isReady = (text: string) => text.includes('\nid: ') || text.startsWith('id: ');
  const sizes: number[] = [];
  for (let left = order.count; left > 0; left -= order.perSession) sizes.push(Math.min(order.perSession, left));
  let next = 0;
  const openNext = () => {
    if (next < sizes.length) openOne(sizes[next++]!);
  };
  const openOne = (size: number) => {
    const session = h2connect(`https://127.0.0.1:${order.port}`, {
      rejectUnauthorized: false,
      localAddress: order.address,
      // A browser's window: data keeps flowing without a WINDOW_UPDATE per message.
      settings: { initialWindowSize: 1 << 20 },
    } as Parameters<typeof h2connect>[1]);
    session.on('error', () => {});
    sessions.push(session);
    let ready = 0;
    session.once('close', () => {
      if (ready < size) setTimeout(() => openOne(size - ready), 200);
    });
    for (let i = 0; i < size; i++) {
      const count = counter();
      counters.push(count);
      let first = true;
      const stream = session.request({ ':path': '/sub/bench', accept: 'text/event-stream' });
      stream.setEncoding('utf8');
      stream.on('data', (text: string) => {
        if (first && isReady(text)) {
          first = false;
          done();
          if (++ready === size) openNext();
        }
        count.feed(text);
      });
      stream.on('error', () => {});
    }
  };
  for (let i = 0; i < 20; i++) openNext();
}

function runLoader(): void {
  // The driver gone (stopped or crashed): do not hold connections open behind it.
  process.on('disconnect', () => process.exit(0));
  const counters: { n: number }[] = [];
  let ready = 0;
  const sessions: ClientHttp2Session[] = [];
  const isReady = (text: string) => text.includes('\nid: ') || text.startsWith('id: ') || text.includes('\n\nid: ');
  process.on('message', (message: { type: string } & Partial<Start>) => {
    if (message.type === 'start') {
      const order = message as Start;
      const done = () => {
        if (++ready === order.count) process.send!({ type: 'ready' });
      };
      if (order.mode === 'h2') {
        openH2Sessions(order, done, sessions, counters);
        return;
      }
      let next = 0;
      const openNext = () => {
        if (next++ >= order.count) return;
        const count = counter();
        counters.push(count);
        const options = { host: '127.0.0.1', port: order.port, localAddress: order.address };
        const socket =
          order.mode === 'h1-tls'
            ? tlsConnect({ ...options, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
            : connect(options);
        let first = true;
        socket.setEncoding('utf8');
        socket.on(order.mode === 'h1-tls' ? 'secureConnect' : 'connect', () =>
          socket.write('GET /sub/bench HTTP/1.1\r\nHost: h\r\nAccept: text/event-stream\r\n\r\n'),
        );
        socket.on('data', (text: string) => {
          if (first && isReady(text)) {
            first = false;
            done();
            openNext();
          }
          count.feed(text);
        });
        socket.on('error', () => {});
      };
      for (let i = 0; i < 50; i++) openNext();
    } else if (message.type === 'count') {
      process.send!({ type: 'count', n: counters.reduce((sum, c) => sum + c.n, 0) });
    } else if (message.type === 'exit') {
      for (const session of sessions) session.destroy();
      process.exit(0);
    }
  });
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function count(loaders: ChildProcess[]): Promise<number> {
  return Promise.all(
    loaders.map(
      (loader) =>
        new Promise<number>((resolve) => {
          loader.once('message', (m: { n: number }) => resolve(m.n));
          loader.send({ type: 'count' });
        }),
    ),
  ).then((ns) => ns.reduce((a, b) => a + b, 0));
}

interface Case {
  readonly label: string;
  /** kometa, or Node alone (tls-floor.ts) in the mode named. */
  readonly server: 'kometa' | 'floor-net' | 'floor-tls' | 'floor-h2';
  readonly mode: Mode;
  readonly perSession: number;
}

export const CASES: readonly Case[] = [
  { label: 'kometa, HTTP/1.1, plain', server: 'kometa', mode: 'h1', perSession: 1 },
  { label: 'floor: node net, chunked SSE', server: 'floor-net', mode: 'h1', perSession: 1 },
  { label: 'kometa, HTTP/1.1 over TLS', server: 'kometa', mode: 'h1-tls', perSession: 1 },
  { label: 'floor: node tls, chunked SSE', server: 'floor-tls', mode: 'h1-tls', perSession: 1 },
  { label: 'kometa, HTTP/2, 1 stream per connection', server: 'kometa', mode: 'h2', perSession: 1 },
  { label: 'floor: node http2, 1 stream per session', server: 'floor-h2', mode: 'h2', perSession: 1 },
  { label: 'kometa, HTTP/2, 100 streams per connection', server: 'kometa', mode: 'h2', perSession: 100 },
];

export interface H2Options {
  readonly subscribers: number;
  readonly rate: number;
  readonly seconds: number;
  readonly rounds: number;
  /**
   * Run only kometa's HTTP/2 case with one stream per connection, under node --cpu-prof, writing the
   * profiles here (a profiled process is slower: its numbers are not compared).
   */
  readonly profileDir?: string | undefined;
  readonly log: (line: string) => void;
}

export interface H2Row {
  readonly case: string;
  readonly round: number;
  readonly subscribers: number;
  readonly delivered: number;
  readonly expected: number;
  readonly serverCpuSec: number;
  readonly cpuUsPerDelivery: number;
}

function startCaseServer(c: Case, tls: { cert: string; key: string }, port: number, profileDir?: string) {
  if (c.server !== 'kometa') {
    const mode = c.server.slice('floor-'.length);
    const args = ['--mode', mode, '--port', String(port), '--cert', tls.cert, '--key', tls.key];
    return spawnServer(process.execPath, [FLOOR, ...args]);
  }
  const tlsArgs = c.mode === 'h1' ? [] : ['--tls-cert', tls.cert, '--tls-key', tls.key];
  const profile = profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`];
  // A profile is written on a clean exit only: a short drain, well inside stopProcess's wait.
  const drain = profileDir === undefined ? [] : ['--shutdown-grace', '2'];
  return spawnServer(process.execPath, [
    ...profile, CLI, 'serve', '--memory', '--port', String(port), '--log-level', 'warn', '--publish-rate', '0',
    ...tlsArgs, ...drain,
  ]);
}

async function publishAtRate(publish: () => Promise<void>, options: H2Options): Promise<number> {
  const interval = 1000 / options.rate;
  const total = options.rate * options.seconds;
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    await publish();
    const wait = started + (i + 1) * interval - performance.now();
    if (wait > 0) await sleep(wait);
  }
  return total;
}

type Pair = { cert: string; key: string };

async function runCase(c: Case, tls: Pair, options: H2Options, port: number, round: number) {
  const server = startCaseServer(c, tls, port, options.profileDir);
  const loaders: ChildProcess[] = [];
  try {
    await waitForOutput(server, 'listening on', 20_000);
    const loaderCount = 2;
    const per = Math.ceil(options.subscribers / loaderCount);
    for (let i = 0; i < loaderCount; i++)
      loaders.push(fork(HERE, ['loader'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    const ready = loaders.map((l) => new Promise<void>((resolve) => l.once('message', () => resolve())));
    loaders.forEach((loader, i) =>
      loader.send({
        type: 'start', mode: c.mode, port, count: per, perSession: c.perSession, address: sourceAddress(i * 3),
      }),
    );
    await Promise.all(ready);
    // kometa's backend publishes to the same port, over what that port speaks; a floor takes it on port + 1.
    const publish =
      c.server === 'kometa' ? publisher(c.mode === 'h1' ? 'http' : 'https', port) : publisher('http', port + 1);
    await publish(); // warm-up
    await sleep(500);
    const before = await count(loaders);
    const cpuBefore = cpuSeconds(server.pid!);
    const total = await publishAtRate(publish, options);
    const expected = total * per * loaderCount;
    let delivered = 0;
    for (let i = 0; i < 100; i++) {
      delivered = (await count(loaders)) - before;
      if (delivered >= expected) break;
      await sleep(100);
    }
    const cpu = cpuSeconds(server.pid!) - cpuBefore;
    return {
      case: c.label,
      round,
      subscribers: per * loaderCount,
      delivered,
      expected,
      serverCpuSec: Math.round(cpu * 100) / 100,
      cpuUsPerDelivery: Math.round(((cpu * 1e6) / Math.max(1, delivered)) * 100) / 100,
    };
  } finally {
    for (const loader of loaders) loader.send({ type: 'exit' });
    await stopProcess(server, options.profileDir === undefined ? 5000 : 30_000);
  }
}

function publisher(scheme: 'http' | 'https', port: number): () => Promise<void> {
  const body = `m${'x'.repeat(99)}`;
  if (scheme === 'https') {
    const session = h2connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    return () =>
      new Promise((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': '/pub/bench' });
        req.on('response', (h) => (h[':status'] === 201 ? resolve() : reject(new Error(`publish ${h[':status']}`))));
        req.on('error', reject);
        req.resume();
        req.end(body);
      });
  }
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return () =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/pub/bench', method: 'POST', agent }, (res) => {
        res.resume();
        res.on('end', () => (res.statusCode === 201 ? resolve() : reject(new Error(`publish ${res.statusCode}`))));
      });
      req.on('error', reject);
      req.end(body);
    });
}

function selfSignedPair(dir: string): { cert: string; key: string } {
  const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', tls.key, '-out', tls.cert, '-subj', '/CN=localhost',
  ], { stdio: 'ignore' });
  return tls;
}

/** Every case once per round, rounds interleaved (a noisy minute hits every case alike). */
export async function h2Comparison(options: H2Options, firstPort: number): Promise<H2Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'kometa-h2-bench-'));
  const tls = selfSignedPair(dir);
  const rows: H2Row[] = [];
  try {
    let port = firstPort;
    const profiled = (c: Case) => c.server === 'kometa' && c.mode === 'h2' && c.perSession === 1;
    const cases = options.profileDir === undefined ? CASES : CASES.filter(profiled);
    for (let round = 1; round <= options.rounds; round++) {
      for (const c of cases) {
        const row = await runCase(c, tls, options, port, round);
        port += 2;
        rows.push(row);
        const delivered = `${row.delivered}/${row.expected}`;
        options.log(`h2 round ${round}: ${row.case}: ${row.cpuUsPerDelivery} µs/delivery (${delivered})`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Medians per case, each as a ratio to kometa's plain HTTP/1.1 and to Node's floor under it. */
export function renderH2(rows: readonly H2Row[]): string {
  const medianOf = (label: string) => median(rows.filter((r) => r.case === label).map((r) => r.cpuUsPerDelivery));
  const base = rows.some((r) => r.case === CASES[0]!.label) ? medianOf(CASES[0]!.label) : Number.NaN;
  const floorOf: Record<Mode, string> = { h1: CASES[1]!.label, 'h1-tls': CASES[3]!.label, h2: CASES[5]!.label };
  const rounds = Math.max(...rows.map((r) => r.round));
  let text = `## TLS and HTTP/2: server CPU per delivery\n\n`;
  text += `${rows[0]?.subscribers ?? 0} SSE subscribers of one channel; median of ${rounds} rounds `;
  text += `(each round runs every case once). Floor = Node alone writing the same bytes `;
  text += `(bench/servers/tls-floor.ts).\n\n`;
  text += '| case | µs per delivery (median) | rounds | × kometa plain HTTP/1.1 | × its floor | delivered (last) |\n';
  text += '|---|---|---|---|---|---|\n';
  for (const c of CASES) {
    const mine = rows.filter((r) => r.case === c.label);
    if (mine.length === 0) continue;
    const value = medianOf(c.label);
    const hasFloor = c.server === 'kometa' && c.perSession === 1 && rows.some((r) => r.case === floorOf[c.mode]);
    const floor = hasFloor ? (value / medianOf(floorOf[c.mode])).toFixed(2) : '';
    const last = mine.at(-1)!;
    const all = mine.map((r) => r.cpuUsPerDelivery).join(', ');
    text += `| ${c.label} | ${value.toFixed(2)} | ${all} | ${(value / base).toFixed(2)} | ${floor} | `;
    text += `${last.delivered}/${last.expected} |\n`;
  }
  return text + '\n';
}

// The load processes this module forks run it with `loader`; imported by bench/run.js, it only exports.
if (process.argv[2] === 'loader') runLoader();
