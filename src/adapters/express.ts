import type { Request, Response } from 'express';
import { type Comet, defaultComet } from '../comet/comet.js';
import type { CometHandler } from '../comet/types.js';
import { runOnNode } from './node-http.js';

/**
 * An Express 5 route handler for a comet handler: `app.get('/seed', expressComet(handler))`.
 * Express's request and response are node:http's, so this is the node:http
 * adapter with Express's `originalUrl` (the path before any router mount).
 * Errors are answered here (problem details before the first chunk, a cut
 * after), not passed to `next`: after the first chunk Express could do
 * nothing with them anyway.
 */
export function expressComet(
  handler: CometHandler,
  comet: Comet = defaultComet,
): (req: Request, res: Response) => void {
  return (req, res) => runOnNode(handler, req, res, comet, req.originalUrl);
}
