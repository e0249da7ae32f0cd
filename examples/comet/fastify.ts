// The seed's deferred view in Fastify 5.
//   npm run build && node dist/examples/comet/fastify.js
//   curl -N --raw http://127.0.0.1:3003/seed
import Fastify from 'fastify';
import { pathToFileURL } from 'node:url';
import { fastifyComet } from '../../src/adapters/fastify.js';
import { seedHandler } from '../../src/comet/seed.js';

export const app = Fastify();
app.get('/seed', fastifyComet(seedHandler));

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await app.listen({ port: 3003, host: '127.0.0.1' });
  console.log('curl -N --raw http://127.0.0.1:3003/seed');
}
