/*
 * The origin behind Pushpin: answers GET /sub/<channel> with a GRIP
 * hold-stream instruction, so Pushpin keeps the client's request open and
 * sends it whatever is published to <channel> (http-stream format).
 *
 *   node dist/bench/servers/pushpin-origin.js --port 8001
 */
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '8001' }, host: { type: 'string', default: '127.0.0.1' } },
});
const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (url.startsWith('/sub/')) {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Grip-Hold': 'stream',
      'Grip-Channel': url.slice(5),
      'Content-Length': '0',
    });
    res.end();
    return;
  }
  res.writeHead(404, { 'Content-Length': '0' });
  res.end();
});
server.keepAliveTimeout = 60_000;
server.listen(Number(values.port), values.host, () =>
  process.stdout.write(`pushpin-origin listening on ${values.host}:${values.port}\n`),
);
process.on('SIGTERM', () => process.exit(0));
