import type { IncomingMessage, ServerResponse } from 'node:http';
import { KometaError } from '../core/errors.js';
import { sendProblem } from '../http/problem.js';
import { encodeSseEvent } from '../protocol/sse.js';
import { SSE_HEADERS } from '../transports/sse.js';

/** Probes held at once in this process; more are answered 429. */
const MAX_PROBES = 32;
let active = 0;

/**
 * GET /_kometa/probe?chunks=5&interval=500 — a stream for `kometa doctor`:
 * `chunks` small SSE events, `interval` ms apart, with exactly the headers a
 * real SSE subscription gets, so a proxy treats it the same way. A client
 * that sees them arrive spaced as sent has nothing buffering in between; one
 * that sees them all at the end does. A long interval finds idle cut-offs.
 * Public (it reveals nothing and is bounded: at most 10 events, 65 s).
 */
export function serveProbe(req: IncomingMessage, res: ServerResponse, url: URL): void {
  if (req.method !== 'GET') {
    sendProblem(res, new KometaError('KOMETA_ERR_METHOD', 'Use GET here', { allow: 'GET' }));
    return;
  }
  const chunks = Math.min(10, Math.max(1, Number(url.searchParams.get('chunks') ?? 5) || 5));
  const interval = Math.min(60_000, Math.max(0, Number(url.searchParams.get('interval') ?? 500) || 0));
  if (chunks * interval > 65_000) {
    sendProblem(res, new KometaError('KOMETA_ERR_TIMEOUT_PARAM', 'A probe lasts at most 65 s (chunks × interval)'));
    return;
  }
  if (active >= MAX_PROBES) {
    sendProblem(res, new KometaError('KOMETA_ERR_RATE_LIMITED', 'Too many probes at once', { retryAfter: 1 }), {
      'Retry-After': '1',
    });
    return;
  }
  active++;
  res.writeHead(200, SSE_HEADERS);
  res.flushHeaders();
  // Over HTTP/2 the socket is the session's, and node refuses to let it be touched.
  if (req.httpVersionMajor !== 2) res.socket?.setNoDelay(true);
  const started = performance.now();
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  const done = () => {
    clearTimeout(timer);
    active--;
  };
  res.once('close', () => {
    if (sent < chunks) done();
  });
  const next = () => {
    sent++;
    const data = JSON.stringify({ n: sent, of: chunks, sentAfterMs: Math.round(performance.now() - started) });
    res.write(encodeSseEvent({ event: 'probe', id: String(sent), data }));
    if (sent === chunks) {
      done();
      res.end();
      return;
    }
    timer = setTimeout(next, interval);
  };
  next();
}
