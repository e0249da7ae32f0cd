import { type IncomingMessage, type Server, type ServerResponse, createServer } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
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
import { type SecureListener, type TlsMaterial, createSecureListener, isHttp2, sessionOf } from './tls.js';

/*
 * The hub as a node:http server. The pieces, one concern each: hub-http.ts
 * (routing), subscribe.ts (GET /sub and transport choice), publish.ts,
 * channel-routes.ts (/channels, /healthz), tickets.ts, backend-routes.ts,
 * websocket.ts (/ws), connection-limits.ts, shutdown.ts; tls.ts for HTTPS
 * with HTTP/2 (createSecureHubServer).
 */
export { HubHttp } from './hub-http.js';
export { type HubHttpOptions, defaultHubHttpOptions } from './hub-options.js';
export { sendJson } from './send-json.js';

export interface HubServer<S extends Server | Http2SecureServer = Server> {
  /** node:http's server, or (createSecureHubServer) node:http2's, which also speaks HTTP/1.1. */
  readonly server: S;
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
  return buildHubServer(hub, undefined, options, fallback) as HubServer;
}

/** The same hub over HTTPS: HTTP/2 and HTTP/1.1 on one port, chosen by ALPN (tls.ts). */
export function createSecureHubServer(
  hub: Hub,
  tls: TlsMaterial,
  options: Partial<HubHttpOptions> = {},
  fallback?: (req: IncomingMessage, res: ServerResponse) => void,
): HubServer<Http2SecureServer> {
  return buildHubServer(hub, tls, options, fallback) as HubServer<Http2SecureServer>;
}

function buildHubServer(
  hub: Hub,
  tls: TlsMaterial | undefined,
  options: Partial<HubHttpOptions>,
  fallback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined,
): HubServer<Server | Http2SecureServer> {
  // One timer wheel for the HTTP side's and /ws's deadlines and heartbeats.
  const wheel = new TimerWheel(HUB_TICK_MS);
  const http = new HubHttp(hub, options, wheel);
  const gate: ConnectionGate = {
    rejected: new WeakSet<Socket>(),
    forwarded: new ForwardedConnections(http.options.maxConnectionsPerIp, http.options.trustProxy),
    inOrder: new InOrder(),
  };
  const { server, secure } = createListener(http, tls, requestHandler(http, gate, fallback));
  const webSocket = createWebSocket(hub, http, wheel);
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const overLimit = gate.rejected.has(socket) ? undefined : gate.forwarded.admit(req, socket);
    if (gate.rejected.has(socket)) socket.destroy();
    else if (overLimit !== undefined) socket.end(rawProblemResponse(overLimit));
    else if (http.reservedSockets.has(socket)) socket.end(rawProblemResponse(serverFull()));
    else gate.inOrder.upgrade(socket, () => webSocket.handleUpgrade(req, socket, head));
  });
  if (secure !== undefined) server.on('connect', extendedConnectHandler(http, gate, webSocket));
  const { maxConnections, maxConnectionsPerIp, trustProxy } = http.options;
  const { rejected } = gate;
  const secured = secure !== undefined;
  limitConnections(server, secured, maxConnections, maxConnectionsPerIp, rejected, http.reservedSockets, trustProxy);
  // With allowHTTP1 node's HTTP/2 server runs node:http's HTTP/1.1 code, which reads these from it too.
  const timeouts = server as Server;
  timeouts.headersTimeout = http.options.headersTimeoutMs;
  timeouts.requestTimeout = http.options.requestTimeoutMs;
  timeouts.keepAliveTimeout = http.options.keepAliveTimeoutMs;
  answerMalformedRequests(server as Server);
  return {
    server,
    http,
    webSocket,
    listen: (port, host) => listen(server as Server, port, host),
    close: () => drainServer(server, secure, http, webSocket),
  };
}

/** Streams at most open at once on one HTTP/2 connection: room for many tabs' subscriptions (browsers use ~100). */
const SECURE_MAX_STREAMS = 256;

/** node:http's server, or with a certificate node:http2's that speaks both (tls.ts). */
function createListener(
  http: HubHttp,
  tls: TlsMaterial | undefined,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): { server: Server | Http2SecureServer; secure: SecureListener | undefined } {
  if (tls !== undefined) {
    const limits = {
      maxHeaderBytes: http.options.maxHeaderBytes,
      maxStreams: SECURE_MAX_STREAMS,
      // HTTP/1.1's keep-alive timeout is HTTP/2's idle-session timeout too: one idea, one setting.
      idleSessionMs: http.options.keepAliveTimeoutMs,
    };
    const secure = createSecureListener(tls, limits, handler);
    http.connectionOf = secure.connectionOf;
    return { server: secure.server, secure };
  }
  const server = createServer(
    {
      maxHeaderSize: http.options.maxHeaderBytes,
      // node:http only checks header and request timeouts this often (30 s by
      // default), which would let a slowloris client hold a socket far longer
      // than headersTimeout says.
      connectionsCheckingInterval: Math.min(1000, http.options.headersTimeoutMs),
    },
    handler,
  );
  return { server, secure: undefined };
}

/**
 * A request on an HTTP/2 connection taken past the connection limits: the
 * limit is said on the stream (an HTTP/1.1 connection was told before any
 * request, in limitConnections) and the connection is wound down.
 */
function answerRejectedStream(req: IncomingMessage, res: ServerResponse): void {
  const session = sessionOf(req);
  if (session === undefined) return;
  sendProblem(res, new KometaError('KOMETA_ERR_TOO_MANY_CONNECTIONS', 'The hub has too many connections open'));
  session.close();
}

/**
 * `server.on('connect')` over TLS: an HTTP/2 extended CONNECT (RFC 8441) is a
 * WebSocket on a stream, through the same gate as an HTTP/1.1 upgrade. node
 * also emits 'connect' for an HTTP/1.1 CONNECT (a proxy tunnel request, with
 * the socket instead of a response): the hub is no proxy, 405.
 */
function extendedConnectHandler(
  http: HubHttp,
  gate: ConnectionGate,
  webSocket: HubWebSocket,
): (req: IncomingMessage, res: ServerResponse | Socket) => void {
  return (req, res) => {
    if (!isHttp2(req)) {
      (res as Socket).end(rawProblemResponse(new KometaError('KOMETA_ERR_METHOD', 'The hub is not a CONNECT proxy')));
      return;
    }
    const response = res as ServerResponse;
    const connection = http.connectionOf(req);
    if (connection !== undefined && gate.rejected.has(connection)) {
      answerRejectedStream(req, response);
      return;
    }
    const overLimit = gate.forwarded.admit(req, response);
    if (overLimit !== undefined) sendProblem(response, overLimit);
    else if (connection !== undefined && http.reservedSockets.has(connection)) sendProblem(response, serverFull());
    else webSocket.handleExtendedConnect(req, response);
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
function requestHandler(
  http: HubHttp,
  gate: ConnectionGate,
  fallback: ((req: IncomingMessage, res: ServerResponse) => void) | undefined,
): (req: IncomingMessage, res: ServerResponse) => void {
  return gate.inOrder.requests((req, res) => {
      const connection = http.connectionOf(req);
      if (connection !== undefined && gate.rejected.has(connection)) {
        answerRejectedStream(req, res);
        return;
      }
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
  });
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
    publishOnce: (channel, data, event, key, exclude) => http.backend.publish(channel, data, event, key, exclude),
  });
}
