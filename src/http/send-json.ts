import type { ServerResponse } from 'node:http';

/** A JSON answer, never cached (every route's answer is about now). */
export function sendJson(res: ServerResponse, status: number, value: unknown): void {
  sendJsonText(res, status, JSON.stringify(value));
}

/** `sendJson` for a body that is JSON text already (the publish route builds its 201 by hand). */
export function sendJsonText(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, [
    'Content-Type',
    'application/json; charset=utf-8',
    'Content-Length',
    String(Buffer.byteLength(body)),
    'Cache-Control',
    'no-store',
  ]);
  endWithBody(res, body);
}

/**
 * Finish a response whose head is set (writeHead) with its whole body, in
 * one plain socket write.
 *
 * node:http's `end(body)` corks the socket, queues head-and-body, then an
 * empty write that carries its finish callback, and uncorks: two buffers,
 * sent by `writev` through the stream's buffered path. `write(body)` queues
 * head-and-body alone (it corks too, to uncork on the next tick); uncorking
 * at once sends that one buffer with a plain write, and `end()` then has
 * nothing left to send. Same bytes on the wire; on a publish answered this
 * way the hub spends less CPU per request (docs/benchmarks.md). Over HTTP/2,
 * or when the connection is already corked by someone else, plain `end`.
 */
export function endWithBody(res: ServerResponse, body: string): void {
  const socket = res.socket;
  if (socket === null || res.req.httpVersionMajor !== 1 || socket.writableCorked !== 0) {
    res.end(body);
    return;
  }
  res.write(body);
  if (socket.writableCorked !== 0) socket.uncork();
  res.end();
}
