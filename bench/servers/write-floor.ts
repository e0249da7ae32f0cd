/*
 * The write floor: what one delivery costs the platform alone (Node's
 * socket write and the loopback kernel), with no publish request per
 * delivery and nothing built per message.
 *
 *   node dist/bench/servers/write-floor.js --port 8000
 *
 * GET /sub/<channel> answers 200 text/event-stream (chunked) and prebuilds
 * that subscriber's frame: one HTTP chunk `data: <payload>\n\n`, as kometa
 * writes it (its latency, measured from subscribe time, means nothing).
 * POST /fire with a body of the round's number (the message's sequence
 * number, 1 to 4: the bench's warm-up round and its measured ones) and
 * channel names, one a line, writes each named subscriber's chunk for that
 * round, prebuilt, with one `socket.write`, as kometa's ChunkedStream does,
 * and answers an empty 201. The bench sends the names of 100 channels per
 * request, as it sends kometa's batches.
 */
import { createServer } from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8000' },
    host: { type: 'string', default: '127.0.0.1' },
    bytes: { type: 'string', default: '100' },
  },
});

interface Subscriber {
  readonly socket: Socket;
  /** The frame of each round. */
  readonly frames: readonly Buffer[];
}

const ROUNDS = 4;

const subscribers = new Map<string, Subscriber>();

/** The bench's message marker (`@@<seq>.<µs>;`, bench/lib/protocol.ts) padded to its size; built at subscribe time. */
function frameFor(seq: number): Buffer {
  const data = `@@${seq}.${Number(process.hrtime.bigint() / 1000n)};`.padEnd(Number(values.bytes), 'x');
  const payload = `data: ${data}\n\n`;
  return Buffer.from(`${Buffer.byteLength(payload).toString(16)}\r\n${payload}\r\n`);
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/sub/')) {
    const name = url.slice(5);
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      Connection: 'close',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    const socket = res.socket!;
    socket.setNoDelay(true);
    const frames = Array.from({ length: ROUNDS }, (_, i) => frameFor(i + 1));
    subscribers.set(name, { socket, frames });
    socket.on('close', () => subscribers.delete(name));
    return;
  }
  if (req.method === 'POST' && url === '/fire') {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const [round, ...names] = Buffer.concat(parts).toString().split('\n');
      const index = Math.min(ROUNDS, Math.max(1, Number(round))) - 1;
      for (const name of names) {
        const subscriber = subscribers.get(name);
        if (subscriber !== undefined) subscriber.socket.write(subscriber.frames[index]!);
      }
      res.writeHead(201, { 'Content-Length': '0' });
      res.end();
    });
    return;
  }
  res.writeHead(404, { 'Content-Length': '0' });
  res.end();
});
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), values.host, () =>
  process.stdout.write(`write-floor listening on ${values.host}:${values.port}\n`),
);
process.on('SIGTERM', () => process.exit(0));
