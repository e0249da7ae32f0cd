/*
 * What a burst costs in memory with one subscriber that stops reading
 * (issue 14, item 8). Starts `kometa serve` in a child process and loads it
 * from this one: one SSE subscriber that reads, one that never reads (its
 * socket stays open, its receive window full), and 40 MB published to their
 * channel in 10 KB messages over keep-alive connections. The burst runs
 * twice; the first is the warm-up, the baseline is taken 10 s after it, and
 * the second is measured: RSS peak during the burst, RSS 10 s later, and the
 * V8 heap / external (Buffer) memory behind it from /metrics.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/memory-stuck-reader.js [--trace-gc]
 *
 * Extra arguments go to the server's node (e.g. --trace-gc, --max-semi-space-size=…).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { type Socket, connect } from 'node:net';
import { resolve } from 'node:path';

const MESSAGE_BYTES = 10 * 1024;
const TOTAL_BYTES = 40 * 1024 * 1024;
const PUBLISHERS = 8;
const ADMIN = 'bench-memory-admin';
const root = resolve(import.meta.dirname, '../..');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

async function startServer(port: number, nodeArgs: string[]): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      ...nodeArgs,
      resolve(root, 'dist/src/cli/main.js'),
      'serve',
      '--memory',
      '--port',
      String(port),
      '--admin-token',
      ADMIN,
      '--publish-rate',
      '0',
      '--log-level',
      'warn',
    ],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  child.stdout!.on('data', (d: Buffer) => {
    if (nodeArgs.includes('--trace-gc')) process.stderr.write(d);
  });
  for (let i = 0; i < 200; i++) {
    if (
      await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      return child;
    await sleep(50);
  }
  throw new Error('the server did not start');
}

interface HeapFigures {
  heapUsed: number;
  heapTotal: number;
  external: number;
}

async function metrics(port: number): Promise<HeapFigures> {
  const text = await (
    await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { Authorization: `Bearer ${ADMIN}` } })
  ).text();
  const pick = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) / 1024 / 1024;
  return {
    heapUsed: pick('nodejs_heap_size_used_bytes'),
    heapTotal: pick('nodejs_heap_size_total_bytes'),
    external: pick('nodejs_external_memory_bytes'),
  };
}

/** An SSE subscriber on a raw socket; `reading: false` never reads a byte after connecting. */
function subscriber(port: number, reading: boolean): Promise<Socket> {
  return new Promise((resolvePromise) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write('GET /sub/mem HTTP/1.1\r\nHost: bench\r\n\r\n');
      resolvePromise(socket);
    });
    socket.on('error', () => {});
    if (reading) socket.resume();
    else socket.pause();
  });
}

async function burst(port: number): Promise<void> {
  const body = 'x'.repeat(MESSAGE_BYTES);
  let left = Math.floor(TOTAL_BYTES / MESSAGE_BYTES);
  await Promise.all(
    Array.from({ length: PUBLISHERS }, async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      while (left-- > 0) {
        await new Promise<void>((done, fail) => {
          const req = request(
            {
              host: '127.0.0.1',
              port,
              path: '/pub/mem',
              method: 'POST',
              agent,
              headers: { 'Content-Type': 'text/plain' },
            },
            (res) => {
              res.resume();
              res.on('end', () => done());
            },
          );
          req.on('error', fail);
          req.end(body);
        });
      }
      agent.destroy();
    }),
  );
}

async function run(port: number, pid: number): Promise<{ peak: number; after: number }> {
  const reader = await subscriber(port, true);
  const stuck = await subscriber(port, false);
  await sleep(200);
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 20);
  await burst(port);
  await sleep(500);
  clearInterval(sampler);
  reader.destroy();
  stuck.destroy();
  await sleep(10_000);
  return { peak, after: rssMiB(pid) };
}

async function main(): Promise<void> {
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const server = await startServer(port, process.argv.slice(2));
  try {
    const pid = server.pid!;
    const start = rssMiB(pid);
    const warm = await run(port, pid);
    const baseline = rssMiB(pid);
    const baseHeap = await metrics(port);
    const measured = await run(port, pid);
    const afterHeap = await metrics(port);
    const f = (n: number) => n.toFixed(1);
    console.log(`40 MB in ${MESSAGE_BYTES / 1024} KB messages, one reading and one stuck SSE subscriber (RSS in MiB)`);
    console.log(`  started            ${f(start)}`);
    console.log(`  warm-up burst      peak ${f(warm.peak)}, 10 s later ${f(warm.after)}`);
    console.log(
      `  baseline           ${f(baseline)}   heap used ${f(baseHeap.heapUsed)} / total ${f(baseHeap.heapTotal)}, ` +
        `external ${f(baseHeap.external)}`,
    );
    console.log(
      `  measured burst     peak ${f(measured.peak)} (+${f(measured.peak - baseline)}), 10 s later ` +
        `${f(measured.after)} (+${f(measured.after - baseline)})`,
    );
    console.log(
      `  after              heap used ${f(afterHeap.heapUsed)} / total ${f(afterHeap.heapTotal)}, external ` +
        `${f(afterHeap.external)}`,
    );
  } finally {
    server.kill('SIGKILL');
  }
}

await main();
