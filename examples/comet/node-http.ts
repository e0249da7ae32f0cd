// The seed's deferred view on plain node:http.
//   npm run build && node dist/examples/comet/node-http.js
//   curl -N --raw http://127.0.0.1:3001/seed
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { nodeComet } from '../../src/adapters/node-http.js';
import { seedHandler } from '../../src/comet/seed.js';

const seed = nodeComet(seedHandler);

export const server = createServer((req, res) => {
  if (req.url === '/seed') seed(req, res);
  else res.writeHead(404).end();
});

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  server.listen(3001, '127.0.0.1', () => console.log('curl -N --raw http://127.0.0.1:3001/seed'));
}
