/**
 * Fuzz the hub's HTTP and WebSocket inputs for a bounded time and report how
 * many inputs were tried and how many crashes were found.
 *
 *   npm run build && node dist/bench/fuzz.js [--seconds 60] [--seed 1]
 *
 * The hub runs as a separate `kometa serve` process on 127.0.0.1 with small
 * limits; a healthy SSE subscriber must keep receiving throughout, and the
 * process must be alive and answering /healthz at the end. Inputs come from a
 * seeded generator, so a failing run can be replayed with the same --seed.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string', default: '1' } },
});
const seconds = Number(values.seconds);
let state = Number(values.seed) >>> 0 || 1;
/** xorshift32: small, seedable, good enough to pick inputs. */
function random(): number {
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 0x100000000;
}
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const int = (max: number) => Math.floor(random() * max);

const fragments = [
  'room',
  'a',
  '..',
  '.',
  '%2e%2e',
  '%2F',
  '%00',
  '%',
  '%E0%A4%A',
  'ä',
  '\u202e',
  '*',
  '**',
  '~',
  ',',
  ' ',
  '\t',
  'x'.repeat(200),
  '',
  '_',
  '-',
  ':',
  '@',
  '🙂',
  '\\',
  '/',
  '?',
  '#',
  ';',
];
const word = () => Array.from({ length: 1 + int(3) }, () => pick(fragments)).join('');
const cursor = () =>
  pick([
    '',
    'a~b~1',
    `${word()}~${word()}~${int(1e6)}`,
    'room~zz~99999999999999999999',
    ',,,',
    '~~',
    'room~e~-1',
    word(),
    'room~e~1,'.repeat(int(400)),
  ]);
const paths = () =>
  pick([
    `/sub/${word()}`,
    `/sub?channel=${word()}&channel=${word()}`,
    `/sub/${word()}?transport=${pick(['sse', 'poll', 'stream', 'ws', word()])}` +
      `&since=${encodeURIComponent(cursor())}&timeout=${pick(['0', '0.1', '-1', 'x', '1e9'])}`,
    `/pub/${word()}?event=${encodeURIComponent(word())}`,
    `/channels/${word()}`,
    '/healthz',
    `/${word()}`,
    '/tickets',
    '*',
    `/sub/${'a/'.repeat(int(50))}`,
  ]);
const methods = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD', 'PATCH', 'CONNECT', 'G E T', 'GET\u0000', word()];
const contentTypes = [
  'text/plain',
  'application/json',
  'application/x-www-form-urlencoded',
  'image/png',
  'multipart/form-data; boundary=x',
  word(),
  '',
];
const bodies = () =>
  pick([
    '',
    'hello',
    '{"a":1}',
    '{"a":',
    '\uFFFF',
    Buffer.from([0xff, 0xfe, 0x00]).toString('latin1'),
    'x'.repeat(int(70_000)),
    'data: x\n\nid: y',
  ]);

function httpInput(): string {
  const body = bodies();
  const headers = [
    `Host: ${pick(['127.0.0.1', '', word()])}`,
    random() < 0.5 ? `Content-Type: ${pick(contentTypes)}` : '',
    random() < 0.3 ? `Last-Event-ID: ${cursor()}` : '',
    random() < 0.3
      ? `Accept: ${pick(['text/event-stream', 'application/json', 'application/x-ndjson', '*/*', word()])}`
      : '',
    random() < 0.2 ? `Authorization: Bearer ${word()}` : '',
    random() < 0.2 ? `Origin: https://${word()}` : '',
    random() < 0.1
      ? `Transfer-Encoding: ${pick(['chunked', 'gzip', word()])}`
      : `Content-Length: ${pick([String(Buffer.byteLength(body)), '0', '-1', '99999999', word()])}`,
    random() < 0.1 ? `X-Many: ${'v'.repeat(int(20_000))}` : '',
  ].filter(Boolean);
  const line =
    random() < 0.05 ? word() : `${pick(methods)} ${paths()} ${pick(['HTTP/1.1', 'HTTP/1.0', 'HTTP/2', word()])}`;
  return `${line}\r\n${headers.join('\r\n')}\r\n\r\n${random() < 0.9 ? body : ''}`;
}

function wsInput(): string | Buffer {
  const frames = [
    () => JSON.stringify({ type: 'subscribe', channel: word(), cursor: cursor() }),
    () => JSON.stringify({ type: 'unsubscribe', channel: word() }),
    () =>
      JSON.stringify({ type: 'publish', channel: word(), data: bodies(), event: random() < 0.5 ? word() : undefined }),
    () => JSON.stringify({ type: 'ping', ref: pick([1, 'x', {}, [], null, 'x'.repeat(300)]) }),
    () => JSON.stringify({ type: word(), channel: 1 }),
    () => `{"type":"subscribe","channel":${JSON.stringify(word())}`,
    () => word(),
    () => JSON.stringify([1, 2, 3]),
    () => 'null',
    () => Buffer.from([0, 1, 2, 255]),
  ];
  return pick(frames)();
}

/** A process's resident set, from /proc (Linux). */
function rssKiB(pid: number | undefined): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

/** The hub under test, with small limits so that the inputs reach them; `state.crashed` once it exits unasked. */
async function startHub() {
  const cli = resolve(import.meta.dirname, '../src/cli/main.js');
  const hub = spawn(
    process.execPath,
    [
      cli,
      'serve',
      '--port',
      '0',
      '--max-message-bytes',
      '4096',
      '--headers-timeout',
      '2',
      '--request-timeout',
      '4',
      '--max-queue-bytes',
      '65536',
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  hub.stdout.on('data', (d) => (output += d));
  hub.stderr.on('data', (d) => (output += d));
  const state = { crashed: false, stopping: false };
  hub.on('exit', (code, signal) => {
    if (!state.stopping) {
      state.crashed = true;
      process.stderr.write(`hub exited during the fuzz run (code ${code}, signal ${signal})\n${output.slice(-2000)}\n`);
    }
  });
  const deadline = Date.now() + 10_000;
  while (!/listening on http:\/\/127\.0\.0\.1:(\d+)/.test(output)) {
    if (Date.now() > deadline || state.crashed) throw new Error(`hub did not start: ${output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const port = Number(/listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output)![1]);
  return { hub, port, state };
}

async function main(): Promise<void> {
  const { hub, port, state } = await startHub();

  // The healthy subscriber that must keep receiving.
  let healthyText = '';
  const healthy = connect(port, '127.0.0.1');
  healthy.setEncoding('utf8');
  healthy.on('data', (d: string) => (healthyText += d));
  healthy.write('GET /sub/healthy?transport=stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');

  const counts = { http: 0, ws: 0, probes: 0, probesReceived: 0 };
  const end = Date.now() + seconds * 1000;
  let lastReport = 0;
  const httpWorker = async () => {
    while (Date.now() < end && !state.crashed) {
      await new Promise<void>((done) => {
        const socket = connect(port, '127.0.0.1');
        socket.on('error', () => done());
        socket.on('close', () => done());
        socket.on('data', () => {});
        socket.write(httpInput(), () => setTimeout(() => socket.destroy(), int(50)));
      });
      counts.http++;
    }
  };
  const wsWorker = async () => {
    while (Date.now() < end && !state.crashed) {
      await new Promise<void>((done) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
        ws.on('error', () => done());
        ws.on('close', () => done());
        ws.on('open', () => {
          const n = 1 + int(20);
          for (let i = 0; i < n; i++) {
            ws.send(wsInput());
            counts.ws++;
          }
          setTimeout(() => ws.terminate(), int(100));
        });
      });
    }
  };
  const prober = async () => {
    while (Date.now() < end && !state.crashed) {
      const probe = `probe-${counts.probes++}`;
      await fetch(`http://127.0.0.1:${port}/pub/healthy`, { method: 'POST', body: probe }).catch(() => {});
      await new Promise((r) => setTimeout(r, 500));
      if (healthyText.includes(`"data":"${probe}"`)) counts.probesReceived++;
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        process.stderr.write(
          `fuzz: ${Math.round((end - Date.now()) / 1000)} s left, ${counts.http} HTTP inputs, ${counts.ws} ` +
            `WebSocket frames\n`,
        );
      }
    }
  };
  await Promise.all([httpWorker(), httpWorker(), httpWorker(), wsWorker(), wsWorker(), prober()]);

  const health = await fetch(`http://127.0.0.1:${port}/healthz`)
    .then((r) => r.status)
    .catch(() => 0);
  const rss = rssKiB(hub.pid);
  state.stopping = true;
  hub.kill('SIGTERM');
  healthy.destroy();
  const result = {
    seconds,
    seed: Number(values.seed),
    httpInputs: counts.http,
    webSocketFrames: counts.ws,
    crashes: state.crashed ? 1 : 0,
    healthAfter: health,
    healthySubscriberProbes: `${counts.probesReceived}/${counts.probes}`,
    hubRssMiB: Math.round(rss / 1024),
  };
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  process.exitCode = state.crashed || health !== 200 ? 1 : 0;
}

main().catch((error: unknown) => {
  process.stderr.write(`fuzz: ${(error as Error).stack}\n`);
  process.exit(1);
});
