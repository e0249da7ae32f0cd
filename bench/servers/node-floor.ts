/*
 * The floor: the least a node:http SSE server can do for a fan-out.
 *
 *   node dist/bench/servers/node-floor.js --port 8000
 *
 * GET /sub/<channel> answers 200 text/event-stream and keeps the response.
 * POST /pub/<channel> reads the body, builds ONE frame Buffer
 * (`data: <body>\n\n`) and hands that same Buffer to `res.write` of every
 * response in the channel. No history, no ids, no heartbeats, no limits:
 * anything a real hub does on top of this costs something, so this is the
 * line to measure a hub against.
 */
import { createServer, type ServerResponse } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '8000' }, host: { type: 'string', default: '127.0.0.1' } },
});
const channels = new Map<string, Set<ServerResponse>>();

const server = createServer((req, res) => {
  const url = req.url ?? '/';
  if (req.method === 'GET' && url.startsWith('/sub/')) {
    const name = url.slice(5);
    let set = channels.get(name);
    if (set === undefined) channels.set(name, (set = new Set()));
    const members = set;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    res.flushHeaders();
    members.add(res);
    res.on('close', () => members.delete(res));
    return;
  }
  if (req.method === 'POST' && url.startsWith('/pub/')) {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('end', () => {
      const members = channels.get(url.slice(5));
      const frame = Buffer.concat([Buffer.from('data: '), ...parts, Buffer.from('\n\n')]);
      if (members !== undefined) for (const member of members) member.write(frame);
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
  process.stdout.write(`node-floor listening on ${values.host}:${values.port}\n`),
);
process.on('SIGTERM', () => process.exit(0));
