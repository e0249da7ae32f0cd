/*
 * The floors of the h2 scenario: the least Node itself can do to write SSE
 * to N subscribers over plain TCP, TLS, and HTTP/2, with no hub around it.
 *
 *   node dist/bench/servers/tls-floor.js --mode net|tls|h2 --port 8000 [--cert c.pem --key k.pem]
 *
 * net, tls: a raw `net`/`tls` server; a connection whose first bytes are a
 * GET of /sub/… gets an HTTP/1.1 chunked SSE head and is kept. h2: an
 * `http2.createSecureServer` whose GET /sub/… streams are kept (one stream per
 * session in the scenario). The publisher posts to a node:http server on
 * --port + 1; each message becomes ONE Buffer shaped like kometa's SSE frame
 * (`id: …\ndata: …\n\n`, chunk-framed for HTTP/1.1) written to every
 * subscriber. No parsing beyond that, no history, limits or heartbeats: what
 * kometa costs above this line is kometa's.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { type ServerHttp2Stream, createSecureServer } from 'node:http2';
import { type Socket, createServer as createNetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'tls' },
    port: { type: 'string', default: '8000' },
    host: { type: 'string', default: '127.0.0.1' },
    cert: { type: 'string' },
    key: { type: 'string' },
  },
});
const port = Number(values.port);
const host = values.host!;
let seq = 0;

const sseEvent = (text: string) => `id: bench~floor~${seq}\n${text}\n`;
const chunked = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
const H1_HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n' +
  'Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n';

const sockets = new Set<Socket>();
const streams = new Set<ServerHttp2Stream>();

function keepSocket(socket: Socket): void {
  socket.on('error', () => socket.destroy());
  socket.once('data', (first: Buffer) => {
    if (!first.toString('latin1', 0, 9).startsWith('GET /sub/')) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    socket.write(H1_HEAD + chunked(`retry: 2000\n\n${sseEvent('')}`));
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
}

function listenSubscribers(): void {
  const mode = values.mode;
  if (mode === 'net') {
    createNetServer(keepSocket).listen(port, host);
    return;
  }
  const tls = { cert: readFileSync(values.cert!), key: readFileSync(values.key!) };
  if (mode === 'tls') {
    createTlsServer(tls, keepSocket).listen(port, host);
    return;
  }
  const server = createSecureServer(tls);
  server.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => stream.destroy());
    if (!String(headers[':path']).startsWith('/sub/')) {
      stream.respond({ ':status': 404 }, { endStream: true });
      return;
    }
    stream.respond({ ':status': 200, 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    stream.write(`retry: 2000\n\n${sseEvent('')}`);
    streams.add(stream);
    stream.once('close', () => streams.delete(stream));
  });
  server.on('sessionError', () => {});
  server.listen(port, host);
}

/** One frame Buffer per message, the same Buffer to every subscriber. */
function deliver(body: string): void {
  seq++;
  const event = sseEvent(`data: ${body}\n`);
  if (values.mode === 'h2') {
    const frame = Buffer.from(event);
    for (const stream of streams) stream.write(frame);
    return;
  }
  const frame = Buffer.from(chunked(event));
  for (const socket of sockets) socket.write(frame);
}

listenSubscribers();
createHttpServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (piece: string) => (body += piece));
  req.on('end', () => {
    deliver(body);
    res.writeHead(201, { 'Content-Length': '0' });
    res.end();
  });
}).listen(port + 1, host, () => process.stdout.write(`floor ${values.mode} listening on ${host}:${port}\n`));
process.on('SIGTERM', () => process.exit(0));
