import type { IncomingMessage, ServerResponse } from 'node:http';
import { nodeComet } from '../adapters/node-http.js';
import type { Comet } from '../comet/comet.js';
import { seedHandler } from '../comet/seed.js';
import { KometaError } from '../core/errors.js';
import { sendProblem } from '../http/problem.js';

/**
 * What `kometa serve` answers besides the hub's routes: `/seed`, the seed's
 * five-stage deferred response (`curl -N --raw http://127.0.0.1:8080/seed`),
 * and a 404 for anything else.
 */
export function seedFallback(comet: Comet): (req: IncomingMessage, res: ServerResponse) => void {
  const seed = nodeComet(seedHandler, comet);
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/seed') {
      if (req.method === 'GET' || req.method === 'HEAD') seed(req, res);
      else sendProblem(res, new KometaError('KOMETA_ERR_METHOD', 'Use GET here', { allow: 'GET' }));
      return;
    }
    sendProblem(
      res,
      new KometaError(
        'KOMETA_ERR_NOT_FOUND',
        `No route for ${req.method} ${(path ?? '/').slice(0, 100).replace(/[^\x21-\x7e]/g, '?')}`,
      ),
    );
  };
}
