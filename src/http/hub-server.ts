import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Socket } from 'node:net';
import { KometaError } from '../core/errors.js';
import type { Hub } from '../core/hub.js';
import { TimerWheel } from '../core/timer-wheel.js';
import { serveClientScript } from './web.js';
import { HubWebSocket } from './websocket.js';
import { rawProblemResponse, sendProblem } from './problem.js';
import { InOrder } from './in-order.js';
import { answerMalformedRequests, listen } from './server-setup.js';
import { HUB_TICK_MS, HubHttp } from './hub-http.js';
import type { HubHttpOptions } from './hub-options.js';
import { ForwardedConnections, limitConnections } from './connection-limits.js';
import { drainServer } from './shutdown.js';
import { sanitizePath, serverFull } from './route-kit.js';

/*
 * The hub as a node:http server. The pieces, one concern each: hub-http.ts
 * (routing), subscribe.ts (GET /sub and transport choice), publish.ts,
 * channel-routes.ts (/channels, /healthz), tickets.ts, backend-routes.ts,
 * websocket.ts (/ws), connection-limits.ts, shutdown.ts.
 */
export { HubHttp } from './hub-http.js';
export { type HubHttpOptions, defaultHubHttpOptions } from './hub-options.js';
export { sendJson } from './send-json.js';

export interface HubServer {
  readonly server: Server;
  readonly http: HubHttp;
  readonly webSocket: HubWebSocket;
  listen(port: number, host: string): Promise<{ port: number; host: string }>;
  /** Graceful stop: no new connections, subscribers told to retry, everything closed within the grace period. */
  close(): Promise<void>;
}

/** A node:http server for the hub, with its timeouts and malformed-request answers set. */
export function createHubServer(
  hub: Hub,
  options: Partial<HubHttpOptions> = {},
  fallback?: (req: IncomingMessage, res: ServerResponse) => void,
): HubServer {
  // One timer wheel for the HTTP side's and /ws's deadlines and heartbeats.
  const wheel = new TimerWheel(HUB_TICK_MS);
  const http = new HubHttp(hub, options, wheel);
  const gate: ConnectionGate = {
    rejected: new WeakSet<Socket>(),
    forwarded: new ForwardedConnections(http.options.maxConnectionsPerIp, http.options.trustProxy),
    inOrder: new InOrder(),
  };
  const server = createRequestServer(http, gate, fallback);
  const webSocket = createWebSocket(hub, http, wheel);
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const overLimit = gate.rejected.has(socket) ? undefined : gate.forwarded.admit(req, socket);
    if (gate.rejected.has(socket)) socket.destroy();
    else if (overLimit !== undefined) socket.end(rawProblemResponse(overLimit));
    else if (http.reservedSockets.has(socket)) socket.end(rawProblemResponse(serverFull()));
    else gate.inOrder.upgrade(socket, () => webSocket.handleUpgrade(req, socket, head));
  });
  const { maxConnections, maxConnectionsPerIp, trustProxy } = http.options;
  limitConnections(server, maxConnections, maxConnectionsPerIp, gate.rejected, http.reservedSockets, trustProxy);
  server.headersTimeout = http.options.headersTimeoutMs;
  server.requestTimeout = http.options.requestTimeoutMs;
  server.keepAliveTimeout = http.options.keepAliveTimeoutMs;
  answerMalformedRequests(server);
  return {
    server,
    http,
    webSocket,
    listen: (port, host) => listen(server, port, host),
    close: () => drainServer(server, http, webSocket),
  };
}

/** What every request and upgrade passes before it reaches the hub. */
interface ConnectionGate {
  /** Connections refused by limitConnections: whatever node:http parses from them is ignored. */
  readonly rejected: WeakSet<Socket>;
  /** --max-connections-per-ip behind a trusted proxy, counted per request. */
  readonly forwarded: ForwardedConnections;
  /** Pipelined requests answered in order (in-order.ts). */
  readonly inOrder: InOrder;
}

/** The hub's routes, then the client script, then the app's fallback (or a 404). */
function createRequestServer(
  http: HubHttp,
  gate: ConnectionGate,
  fallback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined,
): Server {
  return createServer(
    {
      maxHeaderSize: http.options.maxHeaderBytes,
      // node:http only checks header and request timeouts this often (30 s by
      // default), which would let a slowloris client hold a socket far longer
      // than headersTimeout says.
      connectionsCheckingInterval: Math.min(1000, http.options.headersTimeoutMs),
    },
    gate.inOrder.requests((req, res) => {
      if (gate.rejected.has(req.socket)) return;
      const overLimit = gate.forwarded.admit(req, res);
      if (overLimit !== undefined) {
        res.setHeader('Connection', 'close');
        sendProblem(res, overLimit);
        return;
      }
      if (http.handle(req, res)) return;
      if (serveClientScript(req, res)) return;
      if (fallback !== undefined) fallback(req, res);
      else
        sendProblem(
          res,
          new KometaError('KOMETA_ERR_NOT_FOUND', `No route for ${req.method} ${sanitizePath(req.url)}`),
        );
    }),
  );
}

/** /ws, sharing the HTTP routes' access policy, publish budget, idempotency keys, disconnects and timer wheel. */
function createWebSocket(hub: Hub, http: HubHttp, wheel: TimerWheel): HubWebSocket {
  return new HubWebSocket(hub, {
    enabled: http.options.websocket,
    publish: http.options.websocketPublish,
    maxQueueBytes: http.options.maxQueueBytes,
    maxMessageBytes: hub.limits.maxMessageBytes,
    maxSubscriptions: hub.limits.maxChannelsPerSubscription,
    heartbeatMs: http.options.heartbeatMs,
    wheel,
    access: http.access,
    publishLimiter: http.publishLimiter,
    clientAddress: (req) => http.clientAddress(req),
    atExpiry: (expiresAt, expire) => http.atExpiry(expiresAt, expire),
    connections: http.backend.connections,
    publishOnce: (channel, data, event, key) => http.backend.publish(channel, data, event, key),
  });
}
