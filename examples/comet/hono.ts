// The seed's deferred view in Hono 4, on @hono/node-server.
//   npm run build && node dist/examples/comet/hono.js
//   curl -N --raw http://127.0.0.1:3004/seed
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { pathToFileURL } from 'node:url';
import { honoComet } from '../../src/adapters/hono.js';
import { seedHandler } from '../../src/comet/seed.js';

export const app = new Hono();
app.get('/seed', honoComet(seedHandler));

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  serve({ fetch: app.fetch, port: 3004, hostname: '127.0.0.1' }, () => console.log('curl -N --raw http://127.0.0.1:3004/seed'));
}
