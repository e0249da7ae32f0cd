/*
 * Server CPU per delivery: SSE over HTTP/2 with TLS against SSE over plain
 * HTTP/1.1, same hub, same messages, one run.
 *
 *   npm run bench:h2 -- [--subscribers 1000] [--rate 100] [--seconds 5]
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
 * users sharing connections).
 */
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { killAllStarted, spawnServer, stopProcess, waitForOutput } from './lib/procs.js';
import { sourceAddress } from './lib/protocol.js';

const HERE = fileURLToPath(import.meta.url);
const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));

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

function runLoader(): void {
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
        for (let opened = 0; opened < order.count; ) {
          const session = h2connect(`https://127.0.0.1:${order.port}`, {
            rejectUnauthorized: false,
            localAddress: order.address,
            // A browser's window: data keeps flowing without a WINDOW_UPDATE per message.
            settings: { initialWindowSize: 1 << 20 },
          } as Parameters<typeof h2connect>[1]);
          session.on('error', () => {});
          sessions.push(session);
          for (let i = 0; i < order.perSession && opened < order.count; i++, opened++) {
            const count = counter();
            counters.push(count);
            let first = true;
            const stream = session.request({ ':path': '/sub/bench', accept: 'text/event-stream' });
            stream.setEncoding('utf8');
            stream.on('data', (text: string) => {
              if (first && isReady(text)) {
                first = false;
                done();
              }
              count.feed(text);
            });
            stream.on('error', () => {});
          }
        }
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
  readonly mode: Mode;
  readonly perSession: number;
}

 
async function runCase(c: Case, tls: { cert: string; key: string }, options: Options, port: number) {
  const tlsArgs = c.mode === 'h1' ? [] : ['--tls-cert', tls.cert, '--tls-key', tls.key];
  const server = spawnServer(process.execPath, [
    CLI, 'serve', '--memory', '--port', String(port), '--log-level', 'warn', '--publish-rate', '0', ...tlsArgs,
  ]);
  try {
    await waitForOutput(server, 'listening on', 20_000);
    const loaderCount = 2;
    const per = Math.ceil(options.subscribers / loaderCount);
    const loaders = Array.from({ length: loaderCount }, () =>
      fork(HERE, ['loader'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }),
    );
    const ready = loaders.map((l) => new Promise<void>((resolve) => l.once('message', () => resolve())));
    loaders.forEach((loader, i) =>
      loader.send({
        type: 'start', mode: c.mode, port, count: per, perSession: c.perSession, address: sourceAddress(i * 3),
      }),
    );
    await Promise.all(ready);
    // The backend publishes to the same port, over what that port speaks.
    const publish = publisher(c.mode === 'h1' ? 'http' : 'https', port);
    await publish(); // warm-up
    await sleep(500);
    const before = await count(loaders);
    const cpuBefore = cpuSeconds(server.pid!);
    const interval = 1000 / options.rate;
    const total = options.rate * options.seconds;
    const started = performance.now();
    for (let i = 0; i < total; i++) {
      await publish();
      const due = started + (i + 1) * interval;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const expected = total * per * loaderCount;
    let delivered = 0;
    for (let i = 0; i < 100; i++) {
      delivered = (await count(loaders)) - before;
      if (delivered >= expected) break;
      await sleep(100);
    }
    const cpu = cpuSeconds(server.pid!) - cpuBefore;
    for (const loader of loaders) loader.send({ type: 'exit' });
    return {
      case: c.label,
      subscribers: per * loaderCount,
      messages: total,
      delivered,
      expected,
      serverCpuSec: Math.round(cpu * 100) / 100,
      cpuUsPerDelivery: Math.round(((cpu * 1e6) / Math.max(1, delivered)) * 100) / 100,
    };
  } finally {
    await stopProcess(server, 5000);
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

interface Options {
  subscribers: number;
  rate: number;
  seconds: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { subscribers: { type: 'string' }, rate: { type: 'string' }, seconds: { type: 'string' } },
  });
  const options: Options = {
    subscribers: Number(values.subscribers ?? 1000),
    rate: Number(values.rate ?? 100),
    seconds: Number(values.seconds ?? 5),
  };
  process.on('exit', killAllStarted);
  const dir = mkdtempSync(join(tmpdir(), 'kometa-h2-bench-'));
  const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-keyout', tls.key, '-out', tls.cert, '-subj', '/CN=localhost',
  ], { stdio: 'ignore' });
  const cases: Case[] = [
    { label: 'HTTP/1.1, plain', mode: 'h1', perSession: 1 },
    { label: 'HTTP/1.1 over TLS', mode: 'h1-tls', perSession: 1 },
    { label: 'HTTP/2 over TLS, 1 stream per connection', mode: 'h2', perSession: 1 },
    { label: 'HTTP/2 over TLS, 100 streams per connection', mode: 'h2', perSession: 100 },
  ];
  const rows = [];
  try {
    let port = 18_750;
    for (const c of cases) {
      const row = await runCase(c, tls, options, port++);
      rows.push(row);
      process.stderr.write(`${row.case}: ${row.cpuUsPerDelivery} µs/delivery (${row.delivered}/${row.expected})\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const base = rows[0]!.cpuUsPerDelivery;
  let text = '| case | subscribers | delivered | server CPU s | µs per delivery | × plain HTTP/1.1 |\n';
  text += '|---|---|---|---|---|---|\n';
  for (const row of rows) {
    const ratio = (row.cpuUsPerDelivery / base).toFixed(2);
    const delivered = `${row.delivered}/${row.expected}`;
    const cpu = `${row.serverCpuSec} | ${row.cpuUsPerDelivery}`;
    text += `| ${row.case} | ${row.subscribers} | ${delivered} | ${cpu} | ${ratio} |\n`;
  }
  process.stdout.write(text);
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(join(RESULTS, 'h2.json'), JSON.stringify(rows, null, 2));
  writeFileSync(join(RESULTS, 'h2.md'), text);
}

if (process.argv[2] === 'loader') runLoader();
else
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
