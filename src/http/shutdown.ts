import type { Server } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { SecureListener } from './tls.js';
import { Server as NetServer } from 'node:net';
import type { HubHttp } from './hub-http.js';
import type { HubWebSocket } from './websocket.js';

/** How long an idle keep-alive connection is left open once a drain has delivered what it had. */
const DRAIN_LINGER_MS = 1000;

/**
 * Graceful stop. No new connections; requests that arrive on open ones get
 * 503 with `Connection: close`; what was read is answered; what was accepted
 * is delivered; then streams end. Idle keep-alive connections are not cut at
 * once (node's server.close() would, resetting a request already on its way
 * on one): they get DRAIN_LINGER_MS to send it and have it answered 503.
 * Whatever is still open after the grace period is cut. Over TLS the same
 * server.close() sends each HTTP/2 session a GOAWAY once its subscriptions
 * have ended; the grace period's cut destroys the TLS sockets.
 */
export function drainServer(
  server: Server | Http2SecureServer,
  secure: SecureListener | undefined,
  http: HubHttp,
  webSocket: HubWebSocket,
): Promise<void> {
  return new Promise<void>((resolve) => {
    let linger: NodeJS.Timeout | undefined;
    const grace = setTimeout(() => {
      if (secure === undefined) (server as Server).closeAllConnections();
      else for (const socket of secure.sockets) socket.destroy();
      // Upgraded sockets are no longer node:http's to close.
      webSocket.terminateAll();
    }, http.options.shutdownGraceMs);
    grace.unref();
    // net's close: stop listening, leave open connections alone.
    NetServer.prototype.close.call(server, () => {
      clearTimeout(grace);
      clearTimeout(linger);
      resolve();
    });
    webSocket.stopAccepting();
    void http.drain().then(() => {
      // Sessions whose subscriptions did not end them (none, or only publishing).
      webSocket.close();
      linger = setTimeout(() => server.close(), Math.min(DRAIN_LINGER_MS, http.options.shutdownGraceMs));
      linger.unref();
    });
  });
}
