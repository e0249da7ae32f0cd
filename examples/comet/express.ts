// The seed's deferred view in Express 5.
//   npm run build && node dist/examples/comet/express.js
//   curl -N --raw http://127.0.0.1:3002/seed
import express from 'express';
import { pathToFileURL } from 'node:url';
import { expressComet } from '../../src/adapters/express.js';
import { seedHandler } from '../../src/comet/seed.js';

export const app = express();
app.get('/seed', expressComet(seedHandler));

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  app.listen(3002, '127.0.0.1', () => console.log('curl -N --raw http://127.0.0.1:3002/seed'));
}
