/*
 * Socket.IO 4 with the WebSocket transport only. A client joins the room
 * named in its handshake query (`?ch=`); POST /pub/<channel> emits
 * `m` with the body to that room.
 *
 *   node dist/bench/servers/socketio.js --port 8000
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '8000' }, host: { type: 'string', default: '127.0.0.1' } },
});

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'POST' && url.startsWith('/pub/')) {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      io.to(url.slice(5)).emit('m', Buffer.concat(parts).toString());
      res.writeHead(201, { 'Content-Length': '0' });
      res.end();
    });
    return;
  }
  if (url.startsWith('/socket.io/')) return; // engine.io answers these
  res.writeHead(404, { 'Content-Length': '0' });
  res.end();
});
server.keepAliveTimeout = 60_000;
// Pings every 10 minutes: the runs are shorter, and kometa sends none either.
const io = new Server(server, {
  transports: ['websocket'],
  pingInterval: 600_000,
  pingTimeout: 600_000,
  serveClient: false,
});
io.on('connection', (socket) => {
  const ch = socket.handshake.query.ch;
  void socket.join(typeof ch === 'string' ? ch : 'c');
});
server.listen(Number(values.port), values.host, () =>
  process.stdout.write(`socketio listening on ${values.host}:${values.port}\n`),
);
process.on('SIGTERM', () => process.exit(0));
