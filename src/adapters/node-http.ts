import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Comet, defaultComet } from '../comet/comet.js';
import type { CometHandler, CometOutput, CometRequest } from '../comet/types.js';

/** Chunks go straight to node:http, which frames each `write` as one HTTP/1.1 chunk. */
class NodeResponseOutput implements CometOutput {
  constructor(private readonly res: ServerResponse & { flush?: () => void }) {}

  open(status: number, headers: Readonly<Record<string, string>>, first: Buffer | undefined): void {
    this.res.writeHead(status, headers);
    if (first === undefined) this.res.flushHeaders();
    else void this.write(first);
  }

  write(chunk: Buffer): Promise<void> | undefined {
    const res = this.res;
    if (res.destroyed) return undefined;
    const ok = res.write(chunk);
    // A compression middleware (Express `compression`) adds flush(); without
    // it the chunk would sit in the compressor.
    if (typeof res.flush === 'function') res.flush();
    if (ok) return undefined;
    return new Promise((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }

  end(): void {
    this.res.end();
  }

  cut(): void {
    cutResponse(this.res);
  }

  fail(status: number, headers: Readonly<Record<string, string>>, body: string): void {
    this.res.writeHead(status, { ...headers, 'Content-Length': String(Buffer.byteLength(body)) });
    this.res.end(body);
  }
}

/**
 * End the connection without the terminating chunk, after what was already
 * written has gone out (node:http holds the latest write corked until the
 * next tick, and destroying the socket at once would drop it): the client
 * receives every chunk sent so far and sees a truncated response.
 */
export function cutResponse(res: ServerResponse): void {
  const socket = res.socket;
  if (socket === null || socket.destroyed) {
    res.destroy();
    return;
  }
  // A peer that never reads would otherwise hold the socket half-closed.
  const timer = setTimeout(() => socket.destroy(), 5000).unref();
  socket.once('close', () => clearTimeout(timer));
  socket.once('finish', () => socket.destroy());
  socket.end();
}

export function nodeRequest(req: IncomingMessage, target: string | undefined = req.url): CometRequest {
  let url: URL;
  try {
    // The path only: a Host header is the client's to make up.
    url = new URL(target !== undefined && target.startsWith('/') ? `http://localhost${target}` : (target ?? '/'));
  } catch {
    url = new URL('http://localhost/');
  }
  return {
    method: req.method ?? 'GET',
    url,
    header: (name) => {
      const value = req.headers[name.toLowerCase()];
      return Array.isArray(value) ? value.join(', ') : value;
    },
  };
}

/** Run a comet handler on a node:http request/response pair (also what the Express adapter does). */
export function runOnNode(
  handler: CometHandler,
  req: IncomingMessage,
  res: ServerResponse,
  comet: Comet,
  target?: string,
): void {
  const run = comet.start(handler, nodeRequest(req, target), new NodeResponseOutput(res));
  res.once('close', () => {
    if (!res.writableFinished) run.clientGone();
  });
}

/**
 * A node:http request listener for a comet handler:
 * `http.createServer(nodeComet(handler))`, or call it from your own router.
 */
export function nodeComet(
  handler: CometHandler,
  comet: Comet = defaultComet,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => runOnNode(handler, req, res, comet);
}
