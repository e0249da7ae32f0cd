/*
 * better-sse as people use it: one session per request, one channel per
 * name, `channel.broadcast(data)` on POST /pub/<channel>.
 *
 *   node dist/bench/servers/better-sse.js --port 8000
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { type Channel, createChannel, createSession } from 'better-sse';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '8000' }, host: { type: 'string', default: '127.0.0.1' } },
});
const channels = new Map<string, Channel>();
function channel(name: string): Channel {
  let found = channels.get(name);
  if (found === undefined) channels.set(name, (found = createChannel()));
  return found;
}

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/sub/')) {
    const name = url.slice(5);
    // No keep-alive comments during a run (kometa's heartbeat is 15 s, the runs are shorter).
    createSession(req, res, { keepAlive: null }).then(
      (session) => channel(name).register(session),
      () => res.destroy(),
    );
    return;
  }
  if (req.method === 'POST' && url.startsWith('/pub/')) {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      channels.get(url.slice(5))?.broadcast(Buffer.concat(parts).toString());
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
  process.stdout.write(`better-sse listening on ${values.host}:${values.port}\n`),
);
process.on('SIGTERM', () => process.exit(0));
