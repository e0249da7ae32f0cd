/*
 * Event-loop delay while 10,000 comet handlers sleep or wait at once.
 *
 *   npm run build && node dist/bench/comet-loop-delay.js [--handlers 10000] [--pings 400]
 *
 * This process is the server: node:http with the comet runtime and a hub.
 * A second process (this file again, forked with --load) is the load: it
 * opens the handlers' connections from 127.0.0.1, 127.0.0.2, … (to stay
 * clear of one source address's ephemeral ports), and times a stream of
 * /ping requests on one keep-alive connection. Three phases, in one run:
 *
 *   baseline  no load: the server's loop delay, and /ping latency
 *   idle      the same while every handler is deferred and nothing fires:
 *             half sleep (10 min), half wait on next() for a quiet channel
 *   active    the same while half the handlers run the seed's loop (sleep
 *             1 s, write a chunk) and half wait on next() for one of 16
 *             channels, one of which gets a publish every 1/16 s (so every
 *             waiter wakes, writes and waits again once a second)
 *
 * After each loaded phase the load process drops its connections, and the
 * server checks that no handler, timer or subscription is left.
 * It stops by itself (a hard deadline kills both processes) and prints
 * medians and p99s; it asserts nothing.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { type IncomingMessage, type ServerResponse, Agent, createServer, request } from 'node:http';
import { type AddressInfo, type Socket, connect } from 'node:net';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { nodeComet } from '../src/adapters/node-http.js';
import { MemoryBroker } from '../src/brokers/memory.js';
import { Comet } from '../src/comet/comet.js';
import type { CometHandler } from '../src/comet/types.js';
import { Hub } from '../src/core/hub.js';

const CHANNELS = 16;
const RESOLUTION_MS = 10;
const DEADLINE_MS = 180_000;

type ToLoad =
  | { type: 'load'; count: number; sleepPath: string; waitPath: string }
  | { type: 'ping' }
  | { type: 'drop' }
  | { type: 'stop' };
type ToServer =
  { type: 'pinged'; latencies: number[] } | { type: 'loaded'; opened: number; failed: number } | { type: 'dropped' };

interface Summary {
  loopP50: number;
  loopP99: number;
  loopMax: number;
  pingP50: number;
  pingP99: number;
  pingMax: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

// ---------------------------------------------------------------- server side

/** The handlers under test, each on its own route. */
function cometRoutes(comet: Comet): Map<string, (req: IncomingMessage, res: ServerResponse) => void> {
  const seedLoop: CometHandler = async (ctx) => {
    await ctx.write('first\n');
    for (;;) {
      await ctx.sleep(1000);
      await ctx.write('tick\n');
    }
  };
  const waitLoop: CometHandler = async (ctx) => {
    const channel = ctx.request.url.searchParams.get('channel') ?? 'bench-0';
    await ctx.write('waiting\n');
    let since: string | undefined;
    for (;;) {
      const result = await ctx.next(channel, { since });
      since = result.cursor;
      await ctx.write(`${result.messages.length}\n`);
    }
  };
  const idleSleep: CometHandler = async (ctx) => {
    await ctx.write('sleeping\n');
    await ctx.sleep(600_000);
  };
  const idleWait: CometHandler = async (ctx) => {
    await ctx.write('waiting\n');
    await ctx.next(`quiet-${ctx.request.url.searchParams.get('channel') ?? '0'}`);
  };
  const ping: CometHandler = (ctx) => {
    ctx.setHeader('Content-Type', 'text/plain');
    ctx.end('pong');
  };
  return new Map<string, (req: IncomingMessage, res: ServerResponse) => void>([
    ['/seed-loop', nodeComet(seedLoop, comet)],
    ['/wait-loop', nodeComet(waitLoop, comet)],
    ['/idle-sleep', nodeComet(idleSleep, comet)],
    ['/idle-wait', nodeComet(idleWait, comet)],
    ['/ping', nodeComet(ping, comet)],
  ]);
}

/** The load process, and how to talk to it: what it sends is kept until asked for by type. */
interface LoadLink {
  readonly child: ChildProcess;
  readonly deadline: NodeJS.Timeout;
  receive<T extends ToServer['type']>(type: T): Promise<Extract<ToServer, { type: T }>>;
  send(message: ToLoad): void;
}

function forkLoad(port: number, pings: number): LoadLink {
  const child: ChildProcess = fork(
    fileURLToPath(import.meta.url),
    ['--load', '--port', String(port), '--pings', String(pings)],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  const deadline = setTimeout(() => {
    process.stderr.write(`bench: no result within ${DEADLINE_MS / 1000} s, giving up\n`);
    child.kill('SIGKILL');
    process.exit(1);
  }, DEADLINE_MS);
  deadline.unref();

  const inbox: ToServer[] = [];
  let wake: (() => void) | undefined;
  child.on('message', (message: ToServer) => {
    inbox.push(message);
    wake?.();
  });
  const receive = async <T extends ToServer['type']>(type: T): Promise<Extract<ToServer, { type: T }>> => {
    for (;;) {
      const index = inbox.findIndex((m) => m.type === type);
      if (index >= 0) return inbox.splice(index, 1)[0] as Extract<ToServer, { type: T }>;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  };
  const send = (message: ToLoad): void => {
    child.send(message);
  };
  return { child, deadline, receive, send };
}

function printReport(notes: readonly string[], baseline: Summary, idle: Summary, active: Summary): void {
  const row = (name: string, s: Summary): string =>
    `${name.padEnd(10)} ${s.loopP50.toFixed(2).padStart(9)} ${s.loopP99.toFixed(2).padStart(9)} ` +
    `${s.loopMax.toFixed(2).padStart(9)}   ${s.pingP50.toFixed(2).padStart(9)} ` +
    `${s.pingP99.toFixed(2).padStart(9)} ${s.pingMax.toFixed(2).padStart(9)}`;
  process.stdout.write(
    `${notes.join('\n')}\n\n` +
      `all times in ms   event-loop delay (beyond the ${RESOLUTION_MS} ms sampling)   /ping latency (client side)\n` +
      `phase            p50       p99       max         p50       p99       max\n` +
      `${row('baseline', baseline)}\n${row('idle', idle)}\n${row('active', active)}\n`,
  );
}

/** Measures event-loop delay here while the load process sends a round of pings, and their latencies. */
function loopDelayMeter(link: LoadLink): () => Promise<Summary> {
  // The histogram records the time between samples; what is over the
  // sampling interval is the delay.
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  return async (): Promise<Summary> => {
    histogram.reset();
    link.send({ type: 'ping' });
    const { latencies } = await link.receive('pinged');
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      loopP50: Math.max(0, histogram.percentile(50) / 1e6 - RESOLUTION_MS),
      loopP99: Math.max(0, histogram.percentile(99) / 1e6 - RESOLUTION_MS),
      loopMax: Math.max(0, histogram.max / 1e6 - RESOLUTION_MS),
      pingP50: percentile(sorted, 50),
      pingP99: percentile(sorted, 99),
      pingMax: sorted[sorted.length - 1] ?? NaN,
    };
  };
}

async function runServer(handlers: number, pings: number): Promise<void> {
  const hub = new Hub(new MemoryBroker());
  const comet = new Comet({ hub });
  const routes = cometRoutes(comet);
  const server = createServer((req, res) => {
    const route = routes.get((req.url ?? '/').split('?')[0]!);
    if (route !== undefined) route(req, res);
    else res.writeHead(404).end();
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  const link = forkLoad(port, pings);
  const { child, deadline, receive, send } = link;

  const measure = loopDelayMeter(link);

  const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
  const notes: string[] = [];
  const loadPhase = async (
    name: string,
    sleepPath: string,
    waitPath: string,
    during: () => () => void,
  ): Promise<Summary> => {
    send({ type: 'load', count: handlers, sleepPath, waitPath });
    const loaded = await receive('loaded');
    const stop = during();
    // Let the loops spread over a second or two before measuring.
    await delay(1500);
    const deferred = comet.counters.active;
    const summary = await measure();
    stop();
    const { sleeping, waiting } = comet.counters;
    send({ type: 'drop' });
    await receive('dropped');
    const settled = performance.now();
    while (comet.counters.active > 0 && performance.now() - settled < 10_000) await delay(20);
    notes.push(
      `${name}: ${loaded.opened} connections (${loaded.failed} failed), ${deferred} handlers in flight when measured ` +
        `(sleeping ${sleeping}, waiting ${waiting}), ` +
        `server rss ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MB; ` +
        `after the clients left: active ${comet.counters.active}, sleeping ${comet.counters.sleeping}, ` +
        `waiting ${comet.counters.waiting}, hub channels ${hub.channelCount}`,
    );
    return summary;
  };

  process.stdout.write(
    `comet loop-delay bench: ${handlers} handlers, ${pings} pings per phase, node ${process.version}\n`,
  );
  const baseline = await measure();
  const idle = await loadPhase('idle', '/idle-sleep', '/idle-wait', () => () => {});
  let published = 0;
  let publishFailures = 0;
  const active = await loadPhase('active', '/seed-loop', '/wait-loop', () => {
    const publisher = setInterval(() => {
      hub.publish(`bench-${published % CHANNELS}`, `m${published}`).catch(() => publishFailures++);
      published++;
    }, 1000 / CHANNELS);
    return () => clearInterval(publisher);
  });
  notes.push(`active: ${published} publishes (${publishFailures} failed)`);

  send({ type: 'stop' });
  await new Promise<void>((resolve) => child.once('exit', () => resolve()));
  server.closeAllConnections();
  server.close();
  clearTimeout(deadline);

  printReport(notes, baseline, idle, active);
}

// ------------------------------------------------------------------ load side

async function runLoad(port: number, pings: number): Promise<void> {
  const sockets: Socket[] = [];
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const send = (message: ToServer): void => {
    process.send!(message);
  };

  const pingOnce = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const started = performance.now();
      const req = request({ host: '127.0.0.1', port, path: '/ping', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(performance.now() - started));
      });
      req.on('error', reject);
      req.end();
    });

  const open = (index: number, sleepPath: string, waitPath: string): Promise<boolean> =>
    new Promise((resolve) => {
      const localAddress = `127.0.0.${1 + (index % 8)}`;
      const path = index % 2 === 0 ? sleepPath : `${waitPath}?channel=bench-${index % CHANNELS}`;
      const socket = connect({ host: '127.0.0.1', port, localAddress });
      socket.on('error', () => resolve(false));
      socket.once('data', () => resolve(true));
      socket.on('data', () => {});
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      sockets.push(socket);
    });

  process.on('message', (message: ToLoad) => {
    void (async () => {
      if (message.type === 'ping') {
        const latencies: number[] = [];
        for (let i = 0; i < pings; i++) {
          latencies.push(await pingOnce());
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        send({ type: 'pinged', latencies });
      } else if (message.type === 'load') {
        let opened = 0;
        let failed = 0;
        for (let start = 0; start < message.count; start += 500) {
          const wave: Promise<boolean>[] = [];
          for (let i = start; i < Math.min(message.count, start + 500); i++)
            wave.push(open(i, message.sleepPath, message.waitPath));
          for (const ok of await Promise.all(wave)) {
            if (ok) opened++;
            else failed++;
          }
        }
        send({ type: 'loaded', opened, failed });
      } else if (message.type === 'drop') {
        for (const socket of sockets.splice(0)) socket.destroy();
        send({ type: 'dropped' });
      } else if (message.type === 'stop') {
        agent.destroy();
        process.disconnect();
      }
    })();
  });
}

const { values } = parseArgs({
  options: {
    load: { type: 'boolean' },
    port: { type: 'string' },
    handlers: { type: 'string', default: '10000' },
    pings: { type: 'string', default: '400' },
  },
});
const pings = Number(values.pings);
if (values.load === true) await runLoad(Number(values.port), pings);
else await runServer(Number(values.handlers), pings);
