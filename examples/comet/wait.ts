// A handler that waits for an event: long-poll inside an ordinary Express route.
// The hub runs in the same process; anything can publish with POST /pub/<channel>.
//   npm run build && node dist/examples/comet/wait.js
//   curl -N --raw 'http://127.0.0.1:3005/room'        # waits
//   curl -d 'hello' http://127.0.0.1:8085/pub/room      # wakes it
import express from 'express';
import { pathToFileURL } from 'node:url';
import { expressComet } from '../../src/adapters/express.js';
import { MemoryBroker } from '../../src/brokers/memory.js';
import { Comet } from '../../src/comet/comet.js';
import type { CometHandler } from '../../src/comet/types.js';
import { Hub } from '../../src/core/hub.js';
import { createHubServer } from '../../src/http/hub-server.js';

export const hub = new Hub(new MemoryBroker());
const comet = new Comet({ hub, onError: (report) => console.error('comet handler failed:', report) });

/** Tell the client what happens in the room, as it happens, for a minute at most. */
export const room: CometHandler = async (ctx) => {
  ctx.setHeader('Content-Type', 'text/plain; charset=utf-8');
  await ctx.write('waiting for the room\n');
  let since: string | undefined;
  const until = Date.now() + 60_000;
  while (Date.now() < until) {
    // The cursor carries over, so nothing published between two waits is missed.
    const result = await ctx.next('room', { since, timeout: until - Date.now() });
    if (result.timedOut) break;
    since = result.cursor;
    for (const message of result.messages) await ctx.write(`${message.data}\n`);
  }
  ctx.end('bye\n');
};

export const app = express();
app.get('/room', expressComet(room, comet));

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  app.listen(3005, '127.0.0.1');
  await createHubServer(hub).listen(8085, '127.0.0.1');
  console.log("curl -N --raw http://127.0.0.1:3005/room   then   curl -d 'hello' http://127.0.0.1:8085/pub/room");
}
